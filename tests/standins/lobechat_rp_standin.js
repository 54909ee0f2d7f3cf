// Relying-party part of the LobeChat stand-in: what LobeChat's Logto provider does
// (discovery at AUTH_LOGTO_ISSUER, authorization code + PKCE, client_secret_basic,
// redirect APP_URL/api/auth/callback/logto), over HTTPS trusting NODE_EXTRA_CA_CERTS.
'use strict';
const https = require('https');
const crypto = require('crypto');

// Test DNS: names in `resolve` (standin.json) go to the given address.
function lookupWith(resolve) {
  return (hostname, options, cb) => {
    const addr = resolve[hostname];
    if (!addr) return require('dns').lookup(hostname, options, cb);
    if (options && options.all) return cb(null, [{ address: addr, family: 4 }]);
    return cb(null, addr, 4);
  };
}

function request(url, opts, body, resolve) {
  return new Promise((ok, bad) => {
    const req = https.request(url, { ...opts, lookup: lookupWith(resolve) }, (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => ok({ status: res.statusCode, body: data }));
    });
    req.on('error', bad);
    if (body) req.write(body);
    req.end();
  });
}

const b64url = (buf) => buf.toString('base64url');
const pending = new Map();

async function discovery(env, resolve) {
  const r = await request(`${env.AUTH_LOGTO_ISSUER}/.well-known/openid-configuration`, {}, null, resolve);
  if (r.status !== 200) throw new Error(`discovery answered ${r.status}`);
  const d = JSON.parse(r.body);
  if (d.issuer !== env.AUTH_LOGTO_ISSUER) {
    throw new Error(`discovery issuer ${d.issuer} differs from AUTH_LOGTO_ISSUER ${env.AUTH_LOGTO_ISSUER}`);
  }
  return d;
}

// Returns true when it handled the request.
async function handle(req, res, env, resolve) {
  const url = new URL(req.url, env.APP_URL);
  const redirectUri = `${env.APP_URL}/api/auth/callback/logto`;
  try {
    if (url.pathname === '/api/auth/signin/logto') {
      const d = await discovery(env, resolve);
      const state = b64url(crypto.randomBytes(16));
      const verifier = b64url(crypto.randomBytes(32));
      pending.set(state, verifier);
      const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
      const auth = new URL(d.authorization_endpoint);
      auth.search = new URLSearchParams({
        client_id: env.AUTH_LOGTO_ID,
        redirect_uri: redirectUri,
        response_type: 'code',
        scope: 'openid profile email',
        state,
        code_challenge: challenge,
        code_challenge_method: 'S256',
      }).toString();
      res.writeHead(302, { location: auth.toString() });
      res.end();
      return true;
    }
    if (url.pathname === '/api/auth/callback/logto') {
      const state = url.searchParams.get('state');
      const verifier = pending.get(state);
      if (!verifier) throw new Error('unknown state');
      if (url.searchParams.get('error')) throw new Error(`provider error ${url.searchParams.get('error')}: ${url.searchParams.get('error_description')}`);
      const d = await discovery(env, resolve);
      const basic = Buffer.from(
        `${encodeURIComponent(env.AUTH_LOGTO_ID)}:${encodeURIComponent(env.AUTH_LOGTO_SECRET)}`
      ).toString('base64');
      const form = new URLSearchParams({
        grant_type: 'authorization_code',
        code: url.searchParams.get('code'),
        redirect_uri: redirectUri,
        code_verifier: verifier,
      }).toString();
      const t = await request(
        d.token_endpoint,
        { method: 'POST', headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' } },
        form,
        resolve
      );
      if (t.status !== 200) throw new Error(`token endpoint answered ${t.status}: ${t.body}`);
      const tok = JSON.parse(t.body);
      const claims = JSON.parse(Buffer.from(tok.id_token.split('.')[1], 'base64url').toString());
      if (claims.iss !== env.AUTH_LOGTO_ISSUER) throw new Error(`id_token iss ${claims.iss}`);
      if (claims.aud !== env.AUTH_LOGTO_ID) throw new Error(`id_token aud ${claims.aud}`);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`signed in: sub=${claims.sub} iss=${claims.iss}\n`);
      return true;
    }
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(`lobechat standin: sign-in failed: ${e.message}\n`);
    return true;
  }
  return false;
}

module.exports = { handle };
