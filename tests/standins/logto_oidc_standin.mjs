// Stand-in for Logto's core that really speaks OIDC: npm `oidc-provider` (the library
// Logto is built on) mounted at /oidc with issuer ENDPOINT/oidc, `proxy = true` so it
// trusts X-Forwarded-Proto/Host (like TRUST_PROXY_HEADER=1), and the clients read from
// the Logto-shaped `applications` table that logto-provision wrote. GET /api/status → 204.
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const c = require(path.join(here, 'standin_common.js'));

const who = 'logto oidc standin';
const dbUrl = c.need('DB_URL', c.postgresUrl);
const endpoint = c.need('ENDPOINT', c.httpsUrl);
const admin = c.need('ADMIN_ENDPOINT');
if (endpoint && admin && new URL(endpoint).origin === new URL(admin).origin) {
  c.fail('ADMIN_ENDPOINT must be a different origin than ENDPOINT');
}
c.need('TRUST_PROXY_HEADER', (v) => (v === '1' ? null : 'must be 1'));
const port = c.need('PORT');
const adminPort = c.need('ADMIN_PORT');
c.verdict(who);

const psql = process.env.STANDIN_PSQL || '/usr/lib/postgresql/15/bin/psql';
const rows = execFileSync(psql, [
  dbUrl, '-v', 'ON_ERROR_STOP=1', '-At', '-F', '\t', '-c',
  "SELECT id, secret, oidc_client_metadata::text FROM applications WHERE type = 'Traditional'",
]).toString().trim().split('\n').filter(Boolean);
const clients = rows.map((r) => {
  const [id, secret, meta] = r.split('\t');
  const m = JSON.parse(meta);
  return {
    client_id: id,
    client_secret: secret,
    redirect_uris: m.redirectUris,
    post_logout_redirect_uris: m.postLogoutRedirectUris,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
  };
});
console.log(`${who}: ${clients.length} client(s): ${clients.map((x) => x.client_id).join(', ')}`);

const { default: Provider } = await import('oidc-provider');
const issuer = `${endpoint}/oidc`;
const provider = new Provider(issuer, {
  clients,
  cookies: { keys: ['standin-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
});
provider.proxy = true;
const callback = provider.callback();

c.serve(who, '127.0.0.1', port, (req, res) => {
  if (req.url === '/api/status') {
    res.writeHead(204);
    return res.end();
  }
  if (req.url === '/oidc' || req.url.startsWith('/oidc/') || req.url.startsWith('/oidc?')) {
    // oidc-provider builds its URLs from originalUrl: keep the mount point in it.
    req.originalUrl = req.url;
    req.url = req.url.slice(5) || '/';
    return callback(req, res);
  }
  res.writeHead(404);
  res.end();
});
c.serve(`${who} (admin)`, '127.0.0.1', adminPort, (req, res) => {
  res.writeHead(302, { location: '/console' });
  res.end();
});
