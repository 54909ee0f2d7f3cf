// Stand-in for the LobeHub image's CMD /app/startServer.js: with DATABASE_DRIVER set it
// runs /app/docker.cjs (migrations) first, then /app/server.js, as the real launcher does.
'use strict';
const { spawnSync, spawn } = require('child_process');

if (process.env.DATABASE_DRIVER) {
  const m = spawnSync(process.execPath, ['/app/docker.cjs'], { stdio: 'inherit', cwd: '/app' });
  if (m.status !== 0) process.exit(m.status || 1);
}
const s = spawn(process.execPath, ['/app/server.js'], { stdio: 'inherit', cwd: '/app' });
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => s.kill(sig));
s.on('exit', (code) => process.exit(code === null ? 1 : code));
