//! Buckets and objects through the S3 API with the root key: listed page by page, each
//! object streamed by GET into its entry (never whole in memory), and PUT back on restore.

use super::archive::{copy_out, ArchiveWriter};
use super::manifest::Kind;
use super::sources::S3Source;
use super::BackupError;
use crate::stack::objects::s3::{bucket_path, S3Client, StreamingBody};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::io::{self, Read};
use tokio::runtime::Handle;

/// Query values: everything but unreserved characters escaped (what SigV4 signs).
const QUERY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Chunks a restored object is sent in.
const CHUNK: usize = 256 << 10;

/// A client for the store.
pub fn client(s3: &S3Source) -> Result<S3Client, BackupError> {
    Ok(S3Client::new(&s3.endpoint, s3.creds.clone())?)
}

/// Every bucket's name (ListBuckets).
pub async fn buckets(c: &S3Client) -> Result<Vec<String>, BackupError> {
    let r = c
        .send(Method::GET, "/", &[], Bytes::new(), "ListBuckets")
        .await?;
    let text = String::from_utf8_lossy(&r.body);
    Ok(blocks(&text, "Bucket")
        .filter_map(|b| tag(b, "Name"))
        .collect())
}

/// One page of ListObjectsV2: (key, size) pairs and the token of the next page.
pub async fn list_page(
    c: &S3Client,
    bucket: &str,
    token: Option<&str>,
) -> Result<(Vec<(String, u64)>, Option<String>), BackupError> {
    let mut path = format!("{}?list-type=2", bucket_path(bucket));
    if let Some(t) = token {
        path = format!(
            "{}?continuation-token={}&list-type=2",
            bucket_path(bucket),
            utf8_percent_encode(t, QUERY_ESCAPE)
        );
    }
    let op = format!("ListObjectsV2 {bucket}");
    let r = c.send(Method::GET, &path, &[], Bytes::new(), &op).await?;
    let text = String::from_utf8_lossy(&r.body);
    let items = blocks(&text, "Contents")
        .filter_map(|b| Some((tag(b, "Key")?, tag(b, "Size")?.parse().ok()?)))
        .collect();
    let next = (tag(&text, "IsTruncated").as_deref() == Some("true"))
        .then(|| tag(&text, "NextContinuationToken"))
        .flatten();
    Ok((items, next))
}

/// One bucket as first listed: its name and the greatest key then (the backup stops
/// there, so uploads that keep coming cannot keep it running).
#[derive(Debug, Clone)]
pub struct Listed {
    pub bucket: String,
    pub last_key: Option<String>,
}

/// Every bucket with its last key, plus the count and bytes of every object (for the
/// progress total). Keys are not kept: a million of them would not fit the RSS budget.
pub fn measure(c: &S3Client, rt: &Handle) -> Result<(Vec<Listed>, u64, u64), BackupError> {
    let names = rt.block_on(buckets(c))?;
    let (mut count, mut bytes) = (0, 0);
    let mut out = Vec::new();
    for b in names {
        let mut token = None;
        let mut last_key = None;
        loop {
            let (items, next) = rt.block_on(list_page(c, &b, token.as_deref()))?;
            count += items.len() as u64;
            bytes += items.iter().map(|(_, s)| s).sum::<u64>();
            if let Some((k, _)) = items.last() {
                last_key = Some(k.clone());
            }
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        out.push(Listed {
            bucket: b,
            last_key,
        });
    }
    Ok((out, count, bytes))
}

/// Appends every bucket and object; returns the number of objects.
pub fn backup(
    c: &S3Client,
    rt: &Handle,
    buckets: &[Listed],
    w: &mut ArchiveWriter,
) -> Result<u64, BackupError> {
    let mut n = 0u64;
    for Listed {
        bucket: b,
        last_key,
    } in buckets
    {
        w.append_empty(&format!("buckets/{b}"), Kind::Bucket { bucket: b.clone() })?;
        let mut token = None;
        'pages: loop {
            let (items, next) = rt.block_on(list_page(c, b, token.as_deref()))?;
            for (key, _) in items {
                // Listed after the first pass ended: not in this backup.
                if last_key.as_ref().is_none_or(|last| key > *last) {
                    break 'pages;
                }
                // Deleted since it was listed: not in the backup (whole or not at all).
                let (len, body) = match rt.block_on(c.get_object_stream(b, &key)) {
                    Ok(x) => x,
                    Err(e) if e.status() == Some(404) => continue,
                    Err(e) => return Err(e.into()),
                };
                n += 1;
                let kind = Kind::Object {
                    bucket: b.clone(),
                    key: key.clone(),
                };
                let reader = BodyReader {
                    rt: rt.clone(),
                    body,
                    buf: Bytes::new(),
                };
                w.append(&format!("objects/{n:08}"), len, 0o600, kind, reader)?;
            }
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
    }
    Ok(n)
}

/// A GET body read synchronously (the archive writer is a blocking thread).
struct BodyReader {
    rt: Handle,
    body: hyper::body::Incoming,
    buf: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.rt.block_on(self.body.frame()) {
                None => return Ok(0),
                Some(Err(e)) => return Err(io::Error::other(e)),
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf = d;
                    }
                }
            }
        }
        let k = out.len().min(self.buf.len());
        out[..k].copy_from_slice(&self.buf.split_to(k));
        Ok(k)
    }
}

/// Creates `bucket` unless it exists.
pub fn restore_bucket(c: &S3Client, rt: &Handle, bucket: &str) -> Result<(), BackupError> {
    if !rt.block_on(c.bucket_exists(bucket))? {
        rt.block_on(c.create_bucket(bucket))?;
    }
    Ok(())
}

/// PUTs one object of `len` bytes streamed from the archive entry `entry`.
pub fn restore_object(
    c: &S3Client,
    rt: &Handle,
    entry: &str,
    (bucket, key): (&str, &str),
    len: u64,
    r: &mut dyn Read,
) -> Result<(), BackupError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body: StreamingBody = BodyExt::boxed(http_body_util::StreamBody::new(
        stream.map(|r| r.map(hyper::body::Frame::data)),
    ));
    let (c2, b2, k2) = (c.clone(), bucket.to_string(), key.to_string());
    let put = rt.spawn(async move { c2.put_object_stream(&b2, &k2, len, body).await });
    let mut sender = ChannelWriter { tx: Some(tx) };
    let copied = copy_out(entry, r, &mut sender, &format!("sending {bucket}/{key}"));
    sender.tx = None;
    let sent = rt
        .block_on(put)
        .map_err(|e| BackupError::Config(format!("PutObject {bucket}/{key}: {e}")))?;
    copied?;
    sent?;
    Ok(())
}

/// Sends what is written as body chunks.
struct ChannelWriter {
    tx: Option<tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>>,
}

impl io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let tx = self.tx.as_ref().ok_or(io::ErrorKind::BrokenPipe)?;
        for chunk in buf.chunks(CHUNK) {
            tx.blocking_send(Ok(Bytes::copy_from_slice(chunk)))
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::BrokenPipe, "the store closed the upload")
                })?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The insides of every `<name>…</name>` block.
fn blocks<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let s = rest.find(&open)? + open.len();
        let e = rest[s..].find(&close)? + s;
        let inner = &rest[s..e];
        rest = &rest[e + close.len()..];
        Some(inner)
    })
}

/// The unescaped text of the first `<name>…</name>`.
fn tag(xml: &str, name: &str) -> Option<String> {
    blocks(xml, name).next().map(unescape)
}

/// XML entities S3 uses in keys and tokens.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find(';') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let ent = &rest[i + 1..i + j];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") => u32::from_str_radix(&ent[2..], 16)
                .ok()
                .and_then(char::from_u32),
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&rest[i..=i + j]),
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_xml_gives_keys_sizes_and_the_next_token() {
        let x = "<ListBucketResult><IsTruncated>true</IsTruncated>\
                 <Contents><Key>a&amp;b/&#x41;.txt</Key><Size>3</Size></Contents>\
                 <Contents><Key>c</Key><Size>0</Size></Contents>\
                 <NextContinuationToken>t&lt;1</NextContinuationToken></ListBucketResult>";
        let items: Vec<_> = blocks(x, "Contents")
            .filter_map(|b| Some((tag(b, "Key")?, tag(b, "Size")?)))
            .collect();
        assert_eq!(
            items,
            [("a&b/A.txt".into(), "3".into()), ("c".into(), "0".into())]
        );
        assert_eq!(tag(x, "NextContinuationToken").as_deref(), Some("t<1"));
        assert_eq!(unescape("x&bogus;y&"), "x&bogus;y&");
    }
}
