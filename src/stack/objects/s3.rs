//! A small S3 client for provisioning: path-style requests over hyper, signed with `aws-sigv4`.
//!
//! Only what objects-init (and the tests) need: bucket existence, creation, policy and CORS,
//! object PUT/GET, and presigned URLs. Signing is the maintained AWS crate's, never ours.

use crate::error_chain::error_chain;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

/// Characters S3 wants escaped in a key: everything but unreserved ones and '/'.
const KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Errors talking to the store; each names the endpoint and the operation.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("S3 endpoint {0:?} is not an http(s)://host:port URL")]
    BadEndpoint(String),
    #[error("cannot reach the object store at {endpoint} ({op}): {reason}")]
    Unreachable {
        endpoint: String,
        op: String,
        reason: String,
    },
    #[error("object store at {endpoint} refused {op}: HTTP {status} {code}: {message}")]
    Refused {
        endpoint: String,
        op: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot sign {op} for {endpoint}: {reason}")]
    Sign {
        endpoint: String,
        op: String,
        reason: String,
    },
}

impl S3Error {
    /// True while the store may still be starting (retry later).
    pub fn is_transient(&self) -> bool {
        match self {
            S3Error::Unreachable { .. } => true,
            S3Error::Refused { status, code, .. } => {
                *status == 503 || code == "XMinioServerNotInitialized" || *status == 502
            }
            _ => false,
        }
    }

    /// The S3 error code (`NotImplemented`, `NoSuchBucket`, …), when the store answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when the store answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A request body the client sends (whole or streamed).
pub type StreamingBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// An answer from the store.
#[derive(Debug, Clone)]
pub struct S3Response {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Access key, secret and region: what a signature needs.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Credentials({}, <secret>)", self.access_key)
    }
}

/// A path-style S3 client for one endpoint (`http://127.0.0.1:29000`).
#[derive(Clone)]
pub struct S3Client {
    endpoint: String,
    creds: S3Credentials,
    http: Client<HttpConnector, StreamingBody>,
    timeout: Duration,
}

impl S3Client {
    /// A client for `endpoint` (scheme, host and port; no path).
    pub fn new(endpoint: &str, creds: S3Credentials) -> Result<Self, S3Error> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let uri: hyper::Uri = endpoint
            .parse()
            .map_err(|_| S3Error::BadEndpoint(endpoint.clone()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() || uri.path() != "/" {
            return Err(S3Error::BadEndpoint(endpoint));
        }
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(Duration::from_secs(3)));
        Ok(S3Client {
            endpoint,
            creds,
            http: Client::builder(TokioExecutor::new()).build(conn),
            timeout: Duration::from_secs(30),
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends a header-signed request; `path_and_query` is already encoded (see [`object_path`]).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        op: &str,
    ) -> Result<S3Response, S3Error> {
        let payload = SignableBody::Precomputed(hex::encode(Sha256::digest(&body)));
        let full = Full::new(body).map_err(|never| match never {}).boxed();
        let resp = self
            .dispatch(method, path_and_query, headers, full, payload, op)
            .await?;
        let status = resp.status();
        let body = tokio::time::timeout(self.timeout, resp.into_body().collect())
            .await
            .map_err(|_| self.unreachable(op, "body not received in time".into()))?
            .map_err(|e| self.unreachable(op, e.to_string()))?
            .to_bytes();
        if status.is_success() {
            Ok(S3Response { status, body })
        } else {
            Err(self.refused(op, status, &body))
        }
    }

    /// GetObject as a stream: the answer's Content-Length and its body, unread.
    pub async fn get_object_stream(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(u64, hyper::body::Incoming), S3Error> {
        let op = format!("GetObject {bucket}/{key}");
        let payload = SignableBody::Precomputed(hex::encode(Sha256::digest(b"")));
        let empty = Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed();
        let resp = self
            .dispatch(
                Method::GET,
                &object_path(bucket, key),
                &[],
                empty,
                payload,
                &op,
            )
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.into_body().collect().await.map(|b| b.to_bytes());
            return Err(self.refused(&op, status, &body.unwrap_or_default()));
        }
        let len = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .ok_or_else(|| self.unreachable(&op, "answer without Content-Length".into()))?;
        Ok((len, resp.into_body()))
    }

    /// PutObject of `len` bytes streamed from `body` (signed as UNSIGNED-PAYLOAD).
    pub async fn put_object_stream(
        &self,
        bucket: &str,
        key: &str,
        len: u64,
        body: StreamingBody,
    ) -> Result<(), S3Error> {
        let op = format!("PutObject {bucket}/{key}");
        let len = len.to_string();
        let headers = [("content-length", len.as_str())];
        let path = object_path(bucket, key);
        let resp = self
            .dispatch(
                Method::PUT,
                &path,
                &headers,
                body,
                SignableBody::UnsignedPayload,
                &op,
            )
            .await?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        if status.is_success() {
            Ok(())
        } else {
            Err(self.refused(&op, status, &body.unwrap_or_default()))
        }
    }

    /// Signs and sends a request; the answer's head within the timeout, body unread.
    async fn dispatch(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: StreamingBody,
        payload: SignableBody<'_>,
        op: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, S3Error> {
        let url = format!("{}{}", self.endpoint, path_and_query);
        let mut req = Request::builder().method(method.clone()).uri(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req
            .body(body)
            .map_err(|e| self.sign_err(op, e.to_string()))?;
        let signed_headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let instructions = self.signature(
            method.as_str(),
            &url,
            &signed_headers,
            payload,
            SignatureLocation::Headers,
            None,
            op,
        )?;
        instructions.apply_to_request_http1x(&mut req);
        tokio::time::timeout(self.timeout, self.http.request(req))
            .await
            .map_err(|_| self.unreachable(op, format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| self.unreachable(op, error_chain(&e)))
    }

    fn unreachable(&self, op: &str, reason: String) -> S3Error {
        S3Error::Unreachable {
            endpoint: self.endpoint.clone(),
            op: op.to_string(),
            reason,
        }
    }

    fn refused(&self, op: &str, status: StatusCode, body: &[u8]) -> S3Error {
        let text = String::from_utf8_lossy(body);
        S3Error::Refused {
            endpoint: self.endpoint.clone(),
            op: op.to_string(),
            status: status.as_u16(),
            code: xml_tag(&text, "Code").unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("error")
                    .replace(' ', "")
            }),
            message: xml_tag(&text, "Message").unwrap_or_default(),
        }
    }

    /// A presigned URL for `method` on `path` (encoded, e.g. `/bucket/key`), valid for
    /// `expires`, made for `base` (the origin the browser will use, e.g. the app origin).
    pub fn presign(
        &self,
        base: &str,
        method: &str,
        path: &str,
        expires: Duration,
    ) -> Result<String, S3Error> {
        let url = format!("{}{}", base.trim_end_matches('/'), path);
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .body(())
            .map_err(|e| self.sign_err("presign", e.to_string()))?;
        let instructions = self.signature(
            method,
            &url,
            &[],
            SignableBody::UnsignedPayload,
            SignatureLocation::QueryParams,
            Some(expires),
            "presign",
        )?;
        instructions.apply_to_request_http1x(&mut req);
        Ok(req.uri().to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn signature(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: SignableBody<'_>,
        location: SignatureLocation,
        expires: Option<Duration>,
        op: &str,
    ) -> Result<aws_sigv4::http_request::SigningInstructions, S3Error> {
        let identity = Credentials::new(
            &self.creds.access_key,
            &self.creds.secret_key,
            None,
            None,
            "prometheus-stack",
        )
        .into();
        let mut settings = SigningSettings::default();
        // S3 signs the path as sent: no double encoding, no normalization.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.signature_location = location;
        settings.expires_in = expires;
        if location == SignatureLocation::Headers {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.creds.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| self.sign_err(op, e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            body,
        )
        .map_err(|e| self.sign_err(op, e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| self.sign_err(op, e.to_string()))?
            .into_parts();
        Ok(instructions)
    }

    fn sign_err(&self, op: &str, reason: String) -> S3Error {
        S3Error::Sign {
            endpoint: self.endpoint.clone(),
            op: op.to_string(),
            reason,
        }
    }

    /// HeadBucket: true when it exists and we may use it.
    pub async fn bucket_exists(&self, bucket: &str) -> Result<bool, S3Error> {
        let op = format!("HeadBucket {bucket}");
        match self
            .send(Method::HEAD, &bucket_path(bucket), &[], Bytes::new(), &op)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// CreateBucket; `Ok(false)` when we already own it.
    pub async fn create_bucket(&self, bucket: &str) -> Result<bool, S3Error> {
        let op = format!("CreateBucket {bucket}");
        match self
            .send(Method::PUT, &bucket_path(bucket), &[], Bytes::new(), &op)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// PutBucketPolicy with a JSON document.
    pub async fn put_bucket_policy(&self, bucket: &str, policy: &str) -> Result<(), S3Error> {
        let op = format!("PutBucketPolicy {bucket}");
        let path = format!("{}?policy", bucket_path(bucket));
        let body = Bytes::from(policy.to_string());
        self.send(
            Method::PUT,
            &path,
            &[("content-type", "application/json")],
            body,
            &op,
        )
        .await
        .map(|_| ())
    }

    /// GetBucketPolicy: the stored JSON document.
    pub async fn get_bucket_policy(&self, bucket: &str) -> Result<String, S3Error> {
        let op = format!("GetBucketPolicy {bucket}");
        let path = format!("{}?policy", bucket_path(bucket));
        let r = self
            .send(Method::GET, &path, &[], Bytes::new(), &op)
            .await?;
        Ok(String::from_utf8_lossy(&r.body).into_owned())
    }

    /// DeleteBucketPolicy (204 also when there was none, on most stores).
    pub async fn delete_bucket_policy(&self, bucket: &str) -> Result<(), S3Error> {
        let op = format!("DeleteBucketPolicy {bucket}");
        let path = format!("{}?policy", bucket_path(bucket));
        self.send(Method::DELETE, &path, &[], Bytes::new(), &op)
            .await
            .map(|_| ())
    }

    /// PutBucketCors with an XML `CORSConfiguration`.
    pub async fn put_bucket_cors(&self, bucket: &str, xml: &str) -> Result<(), S3Error> {
        let op = format!("PutBucketCors {bucket}");
        let path = format!("{}?cors", bucket_path(bucket));
        let body = Bytes::from(xml.to_string());
        let md5 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            md5_digest(&body),
        );
        // AWS and MinIO require Content-MD5 on PutBucketCors.
        self.send(
            Method::PUT,
            &path,
            &[("content-type", "application/xml"), ("content-md5", &md5)],
            body,
            &op,
        )
        .await
        .map(|_| ())
    }

    /// GetBucketCors: the stored XML.
    pub async fn get_bucket_cors(&self, bucket: &str) -> Result<String, S3Error> {
        let op = format!("GetBucketCors {bucket}");
        let path = format!("{}?cors", bucket_path(bucket));
        let r = self
            .send(Method::GET, &path, &[], Bytes::new(), &op)
            .await?;
        Ok(String::from_utf8_lossy(&r.body).into_owned())
    }

    /// PutObject with a small body.
    pub async fn put_object(&self, bucket: &str, key: &str, body: Bytes) -> Result<(), S3Error> {
        let op = format!("PutObject {bucket}/{key}");
        self.send(Method::PUT, &object_path(bucket, key), &[], body, &op)
            .await
            .map(|_| ())
    }

    /// GetObject: the whole body.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Bytes, S3Error> {
        let op = format!("GetObject {bucket}/{key}");
        self.send(
            Method::GET,
            &object_path(bucket, key),
            &[],
            Bytes::new(),
            &op,
        )
        .await
        .map(|r| r.body)
    }
}

/// `/bucket`.
pub fn bucket_path(bucket: &str) -> String {
    format!("/{}", utf8_percent_encode(bucket, KEY_ESCAPE))
}

/// `/bucket/key`, the key escaped the way S3 signs it.
pub fn object_path(bucket: &str, key: &str) -> String {
    format!(
        "/{}/{}",
        utf8_percent_encode(bucket, KEY_ESCAPE),
        utf8_percent_encode(key, KEY_ESCAPE)
    )
}

/// The text of the first `<tag>…</tag>` in an S3 XML answer.
fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

fn md5_digest(data: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_escaped_like_s3_signs_them() {
        assert_eq!(
            object_path("lobe", "a b/ü+x.png"),
            "/lobe/a%20b/%C3%BC%2Bx.png"
        );
    }

    #[test]
    fn warming_stores_are_retried_refusals_are_not() {
        let refused = |status: u16, code: &str| S3Error::Refused {
            endpoint: "http://127.0.0.1:1".into(),
            op: "HeadBucket lobe".into(),
            status,
            code: code.into(),
            message: String::new(),
        };
        assert!(refused(503, "SlowDown").is_transient());
        assert!(refused(500, "XMinioServerNotInitialized").is_transient());
        assert!(!refused(403, "AccessDenied").is_transient());
        assert!(!refused(501, "NotImplemented").is_transient());
    }

    #[test]
    fn error_code_and_message_come_from_the_xml() {
        let x = "<Error><Code>NotImplemented</Code><Message>no</Message></Error>";
        assert_eq!(xml_tag(x, "Code").as_deref(), Some("NotImplemented"));
        assert_eq!(xml_tag(x, "Message").as_deref(), Some("no"));
        assert_eq!(xml_tag(x, "Resource"), None);
    }
}
