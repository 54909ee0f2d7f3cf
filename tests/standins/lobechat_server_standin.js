// Stand-in for LobeChat's `node server.js`: checks the env of the edition named in
// standin.json next to it (research §1.1: v2 refuses NextAuth keys and a trailing '/'),
// verifies JWKS_KEY by signing with it, and answers GET / with 200.
'use strict';
const path = require('path');
const fs = require('fs');
const crypto = require('crypto');
const c = require(path.join(__dirname, 'standin_common.js'));

const who = 'lobechat standin';
const expect = JSON.parse(fs.readFileSync(path.join(__dirname, 'standin.json'), 'utf8'));
const noSlash = (v) => c.httpsUrl(v) || (v.endsWith('/') ? 'must not end with /' : null);

const app = c.need('APP_URL', noSlash);
c.need('KEY_VAULTS_SECRET', (v) => (v.length >= 32 ? null : 'too short'));
c.need('DATABASE_URL', c.postgresUrl);
c.need('DATABASE_DRIVER', (v) => (v === 'node' ? null : 'must be node'));
c.need('AUTH_LOGTO_ID');
c.need('AUTH_LOGTO_SECRET', (v) => (v.length >= 32 ? null : 'too short'));
c.need('AUTH_LOGTO_ISSUER', (v) => c.httpsUrl(v) || (v.endsWith('/oidc') ? null : 'must end with /oidc'));
const port = c.need('PORT');
const host = c.need('HOSTNAME');
if (expect.edition === 'v2') {
  c.forbid(
    (k) => /^NEXT_?AUTH/.test(k) || ['AUTH_URL', 'ACCESS_CODE', 'NEXT_PUBLIC_SERVICE_MODE'].includes(k),
    'LobeChat v2 refuses to start with it'
  );
  c.need('INTERNAL_APP_URL', (v) => (/^http:\/\/127\.0\.0\.1:\d+$/.test(v) ? null : 'must be http://127.0.0.1:PORT'));
  c.need('AUTH_SECRET', (v) => (v.length >= 32 ? null : 'too short'));
  c.need('AUTH_SSO_PROVIDERS', (v) => (v.split(',').includes('logto') ? null : 'must list logto'));
  c.need('JWKS_KEY', (v) => {
    try {
      const jwk = JSON.parse(v).keys[0];
      if (jwk.alg !== 'RS256') return 'key is not RS256';
      const key = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
      const sig = crypto.sign('sha256', Buffer.from('x'), key);
      const pub = crypto.createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' });
      return crypto.verify('sha256', Buffer.from('x'), pub, sig) ? null : 'signature does not verify';
    } catch (e) {
      return `not an RS256 private JWK set: ${e.message}`;
    }
  });
} else {
  c.forbid((k) => ['LOGTO_CLIENT_ID', 'LOGTO_CLIENT_SECRET', 'LOGTO_ISSUER'].includes(k), 'deprecated in v1');
  c.need('NEXT_AUTH_SECRET', (v) => (v.length >= 32 ? null : 'too short'));
  c.need('NEXT_AUTH_SSO_PROVIDERS', (v) => (v.split(',').includes('logto') ? null : 'must list logto'));
  c.need('NEXTAUTH_URL', (v) => (v === `${app}/api/auth` ? null : 'must be APP_URL/api/auth'));
}
for (const name of expect.require || []) c.need(name);
for (const [name, value] of Object.entries(expect.equal || {})) {
  if (process.env[name] !== value) c.fail(`${name}=${JSON.stringify(process.env[name])}, expected ${JSON.stringify(value)}`);
}
if (expect.check_db && process.env.DATABASE_URL) {
  // The URL really opens the database (password percent-encoding included).
  const psql = process.env.STANDIN_PSQL || '/usr/lib/postgresql/15/bin/psql';
  try {
    require('child_process').execFileSync(psql, [process.env.DATABASE_URL, '-Atc', 'SELECT 1'], { stdio: 'pipe' });
  } catch (e) {
    c.fail(`DATABASE_URL does not open the database: ${String(e.stderr || e.message).trim()}`);
  }
}
if (!fs.existsSync(path.join(__dirname, 'migrated'))) c.fail('started before the migration (node docker.cjs) ran');
c.verdict(who);

const rp = require(path.join(__dirname, 'lobechat_rp_standin.js'));
c.serve(who, host, port, async (req, res) => {
  if (await rp.handle(req, res, process.env, expect.resolve || {})) return;
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(`<html>lobechat standin ${expect.edition} at ${app}</html>\n`);
});
