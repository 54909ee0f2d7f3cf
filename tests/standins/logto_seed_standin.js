// Stand-in for `logto db seed --swe` (packages/cli/bin/logto.js): needs DB_URL, and
// creates Logto-shaped tables with psql from the test fixture unless they exist (--swe).
'use strict';
const path = require('path');
const fs = require('fs');
const { execFileSync } = require('child_process');
const c = require(path.join(__dirname, 'standin_common.js'));

const who = 'logto seed standin';
const args = process.argv.slice(2).join(' ');
if (args !== 'db seed --swe') c.fail(`arguments "${args}" are not "db seed --swe"`);
const url = c.need('DB_URL', c.postgresUrl);
c.verdict(who);

// Inside a test image there is no psql: the test loaded the tables before (and says so).
if (fs.existsSync(path.join(__dirname, '..', 'preseeded'))) {
  console.log(`${who}: tables exist (loaded by the test), skipping (--swe)`);
  process.exit(0);
}
const psql = process.env.STANDIN_PSQL || '/usr/lib/postgresql/15/bin/psql';
const q = (sql) => execFileSync(psql, [url, '-v', 'ON_ERROR_STOP=1', '-At', '-c', sql]).toString().trim();
if (q("SELECT to_regclass('logto_configs') IS NOT NULL") === 't') {
  console.log(`${who}: tables exist, skipping (--swe)`);
  process.exit(0);
}
const fixture = path.join(__dirname, '..', 'fixture.sql');
execFileSync(psql, [url, '-v', 'ON_ERROR_STOP=1', '-q', '-f', fixture]);
console.log(`${who}: seeded`);
