// Stand-in for LobeChat's `node docker.cjs` (drizzle migrations from ./migrations):
// needs DATABASE_URL, runs in the folder holding migrations/, leaves a marker.
'use strict';
const path = require('path');
const fs = require('fs');
const c = require(path.join(__dirname, 'standin_common.js'));

const who = 'lobechat migrate standin';
c.need('DATABASE_URL', c.postgresUrl);
c.need('DATABASE_DRIVER', (v) => (v === 'node' ? null : 'must be node'));
if (!fs.existsSync(path.join(process.cwd(), 'migrations'))) c.fail(`no migrations/ in cwd ${process.cwd()}`);
c.verdict(who);
fs.writeFileSync(path.join(process.cwd(), 'migrated'), 'ok\n');
console.log(`${who}: migrations applied`);
