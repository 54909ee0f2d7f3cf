// Shared by the stand-ins: env checks that exit 1 naming the variable, and a tiny server.
'use strict';
const http = require('http');

const problems = [];
function fail(msg) {
  problems.push(msg);
}
function need(name, check) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    fail(`missing ${name}`);
    return undefined;
  }
  if (check) {
    const why = check(v);
    if (why) fail(`${name}=${JSON.stringify(v)}: ${why}`);
  }
  return v;
}
function forbid(pred, why) {
  for (const k of Object.keys(process.env)) {
    if (pred(k)) fail(`forbidden ${k}: ${why}`);
  }
}
function httpsUrl(v) {
  let u;
  try {
    u = new URL(v);
  } catch (e) {
    return 'not a URL';
  }
  if (u.protocol !== 'https:') return 'must be https://';
  return null;
}
function postgresUrl(v) {
  let u;
  try {
    u = new URL(v);
  } catch (e) {
    return 'not a URL';
  }
  if (!/^postgres(ql)?:$/.test(u.protocol)) return 'must be postgres://';
  if (!u.password) return 'has no password';
  if (!u.pathname || u.pathname === '/') return 'names no database';
  return null;
}
// Exits 1 with every problem listed, the way the real programs refuse to start.
function verdict(who) {
  if (problems.length) {
    for (const p of problems) console.error(`${who}: ${p}`);
    process.exit(1);
  }
  console.log(`${who}: env ok`);
}
function serve(who, host, port, handler) {
  const srv = http.createServer(handler);
  const said = () => console.log(`${who}: listening on ${JSON.stringify(srv.address())}`);
  // host null: `listen(port)` as Koa calls it (no host: every interface, unless preloaded).
  if (host === null) srv.listen(Number(port), said);
  else srv.listen(Number(port), host, said);
  process.on('SIGTERM', () => {
    console.log(`${who}: SIGTERM, stopping`);
    srv.close();
    process.exit(0);
  });
  return srv;
}

module.exports = { need, forbid, fail, httpsUrl, postgresUrl, verdict, serve, problems };
