// Stand-in for Logto's core (`cd packages/core && node .`): checks the env Logto needs
// behind a proxy (research §3.1/§3.2) and answers GET /api/status with 204.
'use strict';
const path = require('path');
const c = require(path.join(__dirname, 'standin_common.js'));

const who = 'logto standin';
c.need('DB_URL', c.postgresUrl);
const endpoint = c.need('ENDPOINT', c.httpsUrl);
const admin = c.need('ADMIN_ENDPOINT', (v) => {
  try {
    new URL(v);
  } catch (e) {
    return 'not a URL';
  }
  return null;
});
if (endpoint && admin) {
  try {
    if (new URL(endpoint).origin === new URL(admin).origin) {
      c.fail('ADMIN_ENDPOINT must be a different origin than ENDPOINT (aud check_failed)');
    }
  } catch (e) {}
}
c.need('TRUST_PROXY_HEADER', (v) => (v === '1' || v === 'true' ? null : 'must be 1'));
const port = c.need('PORT', (v) => (/^\d+$/.test(v) ? null : 'not a port'));
const adminPort = c.need('ADMIN_PORT', (v) => (/^\d+$/.test(v) ? null : 'not a port'));
c.need('NODE_ENV', (v) => (v === 'production' ? null : 'must be production'));
if (path.basename(process.cwd()) !== 'core') c.fail(`cwd ${process.cwd()} is not packages/core`);
c.verdict(who);
// Who it runs as (podman: the preset's non-root default --user).
console.log(`${who}: uid ${process.getuid()} gid ${process.getgid()}`);

// Like Logto's `app.listen(port)`: no host, every interface (the preset's preload decides).
c.serve(who, null, port, (req, res) => {
  if (req.url === '/api/status') {
    res.writeHead(204);
    return res.end();
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`logto standin at ${endpoint}\n`);
});
c.serve(`${who} (admin)`, null, adminPort, (req, res) => {
  res.writeHead(302, { location: '/console' });
  res.end();
});
