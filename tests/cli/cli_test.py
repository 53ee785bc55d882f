#!/usr/bin/env python3
"""tests/cli: the crdtsync tool, run as processes.

    cli_test.py CRDTSYNC_BINARY GROUP [CASE_SUBSTRING]

GROUP is one of: local (exec, stat, dump, snapshot, conflicts, version and
their errors), net (serve and sync, auth, /status, /metrics, network
errors), multiprocess (several clients and a server with random writes,
SIGKILL and restarts), cluster (serve --cluster nodes over nats-server,
started by the test on free loopback ports; NATS_SERVER names the binary). Each case runs in its own temporary directory, on
ports the OS chose, and kills every process it started, whatever happens.
The last line is the summary that scripts/count-tests.py reads (the line a
doctest executable prints).
"""
import base64
import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

BIN = None
CASES = []  # (group, name, function)


def case(group):
    def add(fn):
        CASES.append((group, fn.__name__, fn))
        return fn
    return add


class Env:
    """A temporary directory and the processes a case started in it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='crdtsync-cli-')
        self.procs = []
        self.mounts = []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def run(self, *args, input=None, timeout=60, env=None):
        return subprocess.run([BIN, *args], input=input, capture_output=True, text=True, timeout=timeout,
                              env=env)

    def spawn(self, name, *args):
        out = open(self.path(name + '.out'), 'w')
        err = open(self.path(name + '.err'), 'w')
        p = subprocess.Popen([BIN, *args], stdout=out, stderr=err, text=True)
        p.name = name
        self.procs.append(p)
        return p

    def spawn_cmd(self, name, argv):
        """A process that is not the tool (nats-server)."""
        out = open(self.path(name + '.out'), 'w')
        err = open(self.path(name + '.err'), 'w')
        p = subprocess.Popen(argv, stdout=out, stderr=err, text=True)
        p.name = name
        self.procs.append(p)
        return p

    def log(self, name):
        with open(self.path(name + '.err'), errors='replace') as f:
            return f.read()

    def out(self, name):
        with open(self.path(name + '.out'), errors='replace') as f:
            return f.read()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 3
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for m in self.mounts:
            subprocess.run(['umount', m], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def sanitized():
    """True when the binary was built with AddressSanitizer (slower start and exit)."""
    with open(BIN, 'rb') as f:
        return b'AddressSanitizer' in f.read()


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout=20, what='a condition'):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError('timed out after %s s waiting for %s' % (timeout, what))


def check(cond, what, *details):
    if not cond:
        raise AssertionError(what + ''.join('\n  ' + str(d) for d in details))


def expect(r, code, stdout=None, stderr=None):
    """A finished process: its exit code and what its output must contain."""
    detail = ('exit %s\nstdout: %s\nstderr: %s' % (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    check(r.returncode == code, 'expected exit code %d' % code, detail)
    if stdout is not None:
        check(re.search(stdout, r.stdout, re.S) is not None, 'stdout does not match %r' % stdout, detail)
    if stderr is not None:
        check(re.search(stderr, r.stderr, re.S) is not None, 'stderr does not match %r' % stderr, detail)
    check('std::exception' not in r.stderr and 'terminate called' not in r.stderr, 'a raw exception on stderr', detail)
    return r


def serve(env, name='server', data='server', port=0, extra=()):
    p = env.spawn(name, 'serve', '--data', env.path(data), '--listen', '127.0.0.1:%d' % port, *extra)
    line = wait_until(lambda: re.search(r'listening on (\S+)', env.out(name)) or p.poll() is not None, 10,
                      'the server to listen')
    check(p.poll() is None, 'the server exited', env.log(name))
    p.url = line.group(1)
    p.http = 'http://' + p.url[len('ws://'):-len('/sync/ws')]
    return p


def stop(p, timeout=5):
    p.send_signal(signal.SIGTERM)
    return p.wait(timeout)


def dump_json(env, data):
    r = env.run('dump', '--data', env.path(data), '--format', 'json')
    return r.stdout if r.returncode == 0 else None


def state(env, data):
    r = expect(env.run('dump', '--data', env.path(data), '--format', 'state'), 0)
    return r.stdout


def rows(env, data, table='tasks'):
    d = json.loads(expect(env.run('dump', '--data', env.path(data), '--format', 'json'), 0).stdout)
    return d['main.' + table]['rows']


def http_get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.headers.get('Content-Type'), r.read().decode()


def concurrent_random_writes(env, names, rounds, keys):
    """Each replica of `names` runs `rounds` random inserts, updates and deletes
    of `keys` task ids (crdtsync exec), all replicas at once; the seed is
    printed (CRDTSYNC_TEST_SEED replays it)."""
    seed = int(os.environ.get('CRDTSYNC_TEST_SEED', random.randrange(1 << 30)))
    print('  seed %d' % seed)

    def writer(n, seed):
        rnd = random.Random(seed)
        for i in range(rounds):
            k = rnd.randrange(keys)
            op = rnd.choice(['insert', 'update', 'update', 'delete'])
            if op == 'insert':
                sql = "INSERT INTO tasks VALUES (%d, '%s%d', NULL)" % (k, n, i)
            elif op == 'update':
                sql = "UPDATE tasks SET %s WHERE id = %d" % (rnd.choice(["title = '%s%d'" % (n, i), 'done = TRUE', 'done = FALSE']), k)
            else:
                sql = "DELETE FROM tasks WHERE id = %d" % k
            r = env.run('exec', '--data', env.path(n), sql)
            assert r.returncode in (0, 4), r.stderr  # 4: the key exists (insert)
            time.sleep(rnd.random() * 0.05)
    threads = [threading.Thread(target=writer, args=(n, seed + i)) for i, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


TASKS = "CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NULL, done BOOLEAN NULL)"

# ---------------------------------------------------------------- local


@case('local')
def version_and_help(env):
    expect(env.run('version'), 0, r'^crdtsync \d+\.\d+\.\d+ \(storage format \d+, sync protocol 1, snapshot format 1\)\n$')
    expect(env.run('--version'), 0, r'crdtsync \d+\.\d+\.\d+')
    for sub in (['serve'], ['sync'], ['exec'], ['stat'], ['dump'], ['snapshot'], ['snapshot', 'export'],
                ['snapshot', 'import'], ['conflicts'], ['version']):
        expect(env.run(*sub, '--help'), 0, r'Example')
    expect(env.run('--help'), 0, r'Exit codes')


@case('local')
def usage_errors(env):
    expect(env.run(), 2, stderr=r'subcommand')
    expect(env.run('frobnicate'), 2)
    expect(env.run('exec', 'SELECT * FROM t'), 2, stderr=r'--data')
    expect(env.run('stat', '--data', env.path('a'), '--format', 'yaml'), 2)
    expect(env.run('sync', '--data', env.path('a'), '--server', 'ws://x', '--db', 'd', '--token', 't',
                   '--token-file', env.path('f')), 2)
    expect(env.run('--log-level', 'loud', 'version'), 2)


@case('local')
def exec_happy_path(env):
    a = env.path('a')
    r = expect(env.run('exec', '--data', a, TASKS + "; INSERT INTO tasks VALUES (1, 'buy milk', FALSE), "
                       "(2, 'walk, \"the\" dog', NULL); UPDATE tasks SET done = TRUE WHERE id = 1"), 0)
    check(r.stdout == 'CREATE TABLE main.tasks\nINSERT 2\nUPDATE 1\n', 'exec output', r.stdout)
    r = expect(env.run('exec', '--data', a, 'SELECT * FROM tasks'), 0)
    check(r.stdout.splitlines()[0].split() == ['id', '|', 'title', '|', 'done'], 'table header', r.stdout)
    check('buy milk' in r.stdout and '(2 rows)' in r.stdout and 'NULL' in r.stdout, 'table rows', r.stdout)
    r = expect(env.run('exec', '--data', a, '--format', 'json', 'SELECT * FROM tasks WHERE id = 2'), 0)
    check(json.loads(r.stdout) == [{'id': 2, 'title': 'walk, "the" dog', 'done': None}], 'json select', r.stdout)
    r = expect(env.run('exec', '--data', a, '--format', 'csv', 'SELECT * FROM tasks'), 0)
    check(r.stdout == 'id,title,done\n1,buy milk,true\n2,"walk, ""the"" dog",\n', 'csv select (\\r\\n read as text)', repr(r.stdout))
    expect(env.run('exec', '--data', a, 'DELETE FROM tasks WHERE id = 2'), 0, r'^DELETE 1\n$')
    expect(env.run('exec', '--data', a, 'DELETE FROM tasks WHERE id = 2'), 0, r'^DELETE 0\n$')
    expect(env.run('exec', '--data', a, "UPDATE tasks SET title = 'x' WHERE id = 99"), 0, r'^UPDATE 0\n$')
    # From stdin, with comments, several rows, quoting and every literal kind.
    script = ("-- a comment\nCREATE TABLE IF NOT EXISTS kinds (k TEXT PRIMARY KEY, i INTEGER NULL, r REAL NULL, "
              "b BLOB NULL, j JSON NULL, big ANY NULL);\n/* another */ INSERT INTO \"kinds\" (k, i, r, b, j, big) VALUES "
              "('it''s', -5, 2.5e1, x'00ff', '{\"b\":1,\"a\":[true]}', 123456789012345678901234567890);")
    expect(env.run('exec', '--data', a, '-', input=script), 0, r'CREATE TABLE main.kinds\nINSERT 1\n')
    r = expect(env.run('exec', '--data', a, '--format', 'json', "SELECT * FROM kinds WHERE k = 'it''s'"), 0)
    check(json.loads(r.stdout) == [{'k': "it's", 'i': -5, 'r': 25, 'b': {'__bin': 'AP8='}, 'j': {'a': [True], 'b': 1},
                                    'big': {'__bigint': '123456789012345678901234567890'}}], 'literal kinds', r.stdout)
    # An added column travels as a schema change; it must be NULL.
    expect(env.run('exec', '--data', a, 'ALTER TABLE tasks ADD COLUMN due TEXT'), 4, stderr=r'nullable')
    expect(env.run('exec', '--data', a, "ALTER TABLE tasks ADD COLUMN due TEXT NULL; "
                   "UPDATE tasks SET due = 'friday' WHERE id = 1"), 0, r'ALTER TABLE main.tasks ADD COLUMN due\nUPDATE 1\n')
    check(rows(env, 'a') == [{'id': 1, 'title': 'buy milk', 'done': True, 'due': 'friday'}], 'rows', rows(env, 'a'))


@case('local')
def exec_schema_changes(env):
    a = env.path('a')
    expect(env.run('exec', '--data', a, TASKS + "; ALTER TABLE tasks ADD COLUMN due TEXT NULL; "
                   "INSERT INTO tasks VALUES (1, 'buy milk', FALSE, 'friday')"), 0)
    expect(env.run('exec', '--data', a, "ALTER TABLE tasks ALTER COLUMN due SET DEFAULT 'someday'; "
                   "ALTER TABLE tasks DROP COLUMN done; INSERT INTO tasks (id, title) VALUES (2, 'call')"), 0,
           r'ALTER TABLE main.tasks ALTER COLUMN due\nALTER TABLE main.tasks DROP COLUMN done\nINSERT 1\n')
    check(rows(env, 'a') == [{'id': 1, 'title': 'buy milk', 'due': 'friday'}, {'id': 2, 'title': 'call', 'due': 'someday'}],
          'rows', rows(env, 'a'))
    expect(env.run('exec', '--data', a, "CREATE TABLE tags (name TEXT PRIMARY KEY); DROP TABLE tags"), 0, r'DROP TABLE main.tags\n')
    # A dropped name is retired (docs/schema.md).
    expect(env.run('exec', '--data', a, "CREATE TABLE tags (name TEXT PRIMARY KEY)"), 4, stderr=r'was dropped')
    expect(env.run('exec', '--data', a, "ALTER TABLE tasks ADD COLUMN done BOOLEAN NULL"), 4, stderr=r'was dropped')
    # A rename: the rows follow the table, and the earlier name is retired.
    expect(env.run('exec', '--data', a, "ALTER TABLE tasks RENAME TO jobs; INSERT INTO jobs (id, title) VALUES (3, 'post')"), 0,
           r'ALTER TABLE main.tasks RENAME TO jobs\nINSERT 1\n')
    check([r['id'] for r in rows(env, 'a', 'jobs')] == [1, 2, 3], 'rows follow the table', rows(env, 'a', 'jobs'))
    expect(env.run('exec', '--data', a, "SELECT * FROM tasks"), 4, stderr=r'renamed to main.jobs')
    expect(env.run('exec', '--data', a, "ALTER TABLE jobs RENAME TO tags"), 4, stderr=r'dropped or renamed')


@case('local')
def exec_errors(env):
    a = env.path('a')
    expect(env.run('exec', '--data', a, TASKS), 0)
    r = expect(env.run('exec', '--data', a, 'GRANT ALL ON tasks'), 3, stderr=r'unsupported statement GRANT at line 1, column 1')
    check('CREATE TABLE' in r.stderr and 'SELECT' in r.stderr, 'names what is supported', r.stderr)
    expect(env.run('exec', '--data', a, 'CREATE INDEX i ON tasks (title)'), 3, stderr=r'CREATE INDEX is not supported')
    expect(env.run('exec', '--data', a, "INSERT INTO tasks VALUES (1, 'x' FALSE)"), 3, stderr=r"expected '\)' at line 1, column 34 near \"FALSE\)")
    expect(env.run('exec', '--data', a, "SELECT title FROM tasks"), 3, stderr=r'only SELECT \*')
    expect(env.run('exec', '--data', a, "UPDATE tasks SET done = TRUE"), 3, stderr=r'UPDATE needs WHERE')
    expect(env.run('exec', '--data', a, "DELETE FROM tasks WHERE title = 'x'"), 3, stderr=r'not a primary key column')
    expect(env.run('exec', '--data', a, "ALTER TABLE tasks RENAME TO tasks"), 4, stderr=r'already exists')
    expect(env.run('exec', '--data', a, "DROP INDEX i"), 3, stderr=r'DROP INDEX is not supported')
    expect(env.run('exec', '--data', a, "ALTER TABLE tasks DROP COLUMN id"), 4, stderr=r'primary key')
    expect(env.run('exec', '--data', a, "DROP TABLE nope"), 4, stderr=r'nope')
    expect(env.run('exec', '--data', a, "INSERT INTO tasks VALUES ('unterminated"), 3, stderr=r'unterminated string')
    expect(env.run('exec', '--data', a, ""), 3, stderr=r'no statement')
    expect(env.run('exec', '--data', a, "SELECT * FROM nope"), 4, stderr=r'no table "main.nope"')
    expect(env.run('exec', '--data', a, "INSERT INTO nope VALUES (1)"), 4, stderr=r'nope')
    expect(env.run('exec', '--data', a, "INSERT INTO tasks (id, colour) VALUES (1, 'red')"), 4, stderr=r'no column "colour"')
    expect(env.run('exec', '--data', a, "INSERT INTO tasks VALUES (1, 'a')"), 3, stderr=r'gives 2 value\(s\) for its 3 columns')
    expect(env.run('exec', '--data', a, "INSERT INTO tasks VALUES (NULL, 'a', NULL)"), 4, stderr=r'NOT NULL')
    expect(env.run('exec', '--data', a, "CREATE TABLE tasks (id INTEGER PRIMARY KEY)"), 4, stderr=r'already exists')
    expect(env.run('exec', '--data', a, "CREATE TABLE t (id INTEGER PRIMARY KEY"), 4, stderr=r"DDL: expected '\)'")
    # One transaction: a failing statement writes none of its group.
    expect(env.run('exec', '--data', a, "INSERT INTO tasks VALUES (1, 'a', NULL); INSERT INTO tasks VALUES (1, 'b', NULL)"), 4,
           stderr=r'already has a row.*none of the 2 statements of its transaction was written')
    check(rows(env, 'a') == [], 'nothing written', rows(env, 'a'))
    # A SQL error is found before the directory is created.
    expect(env.run('exec', '--data', env.path('new'), 'GRANT x'), 3)
    check(not os.path.exists(env.path('new')), 'no directory for a bad statement')


@case('local')
def stat_and_dump(env):
    a = env.path('a')
    expect(env.run('exec', '--data', a, TASKS + "; CREATE TABLE tags (name TEXT PRIMARY KEY); "
                   "INSERT INTO tasks VALUES (1, 'a', NULL), (2, 'b', NULL), (3, 'c', TRUE); INSERT INTO tags VALUES ('x')"), 0)
    expect(env.run('exec', '--data', a, 'DELETE FROM tasks WHERE id = 3'), 0)
    r = expect(env.run('stat', '--data', a), 0)
    for pat in (r'site id +[A-Za-z0-9_-]{22}\n', r'position +\d+\n', r'main\.tasks: 2 rows, \d+ cells, 1 tombstone\n',
                r'main\.tags: 1 row', r'tombstones +1\n', r'peers +0\n', r'store +[\d.]+ \S+ file', r'snapshot load +none'):
        check(re.search(pat, r.stdout), 'stat shows ' + pat, r.stdout)
    j = json.loads(expect(env.run('stat', '--data', a, '--format', 'json'), 0).stdout)
    check(j['position'] > 0 and j['deletePolicy'] == 'insert_revives' and j['store']['fileBytes'] > 0, 'stat json', j)
    check({t['name']: (t['rows'], t['tombstones']) for t in j['tables']} == {'main.tasks': (2, 1), 'main.tags': (1, 0)},
          'stat json tables', j)
    r = expect(env.run('dump', '--data', a), 0)
    check('main.tags\n' in r.stdout and 'main.tasks\n' in r.stdout and '(2 rows)' in r.stdout, 'dump table', r.stdout)
    d = json.loads(expect(env.run('dump', '--data', a, '--format', 'json'), 0).stdout)
    check(sorted(d) == ['main.tags', 'main.tasks'] and d['main.tasks']['primaryKey'] == ['id'] and
          d['main.tasks']['columns'] == ['id', 'title', 'done'] and len(d['main.tasks']['rows']) == 2 and
          d['main.tasks']['ddl'].startswith('CREATE TABLE "main"."tasks"'), 'dump json', d)
    expect(env.run('dump', '--data', a, '--format', 'csv'), 2, stderr=r'pass --table')
    expect(env.run('dump', '--data', a, '--format', 'csv', '--table', 'tags'), 0, r'^name\nx\n$')  # \r\n, read as text
    expect(env.run('dump', '--data', a, '--table', 'nope'), 4, stderr=r'no table nope \(it has main\.tags, main\.tasks\)')
    expect(env.run('dump', '--data', a, '--format', 'state'), 0, r'table main\.tasks .*  tomb ')


@case('local')
def not_a_replica(env):
    expect(env.run('stat', '--data', env.path('missing')), 10, stderr=r'does not exist')
    expect(env.run('dump', '--data', env.path('missing')), 10)
    os.mkdir(env.path('empty'))
    expect(env.run('stat', '--data', env.path('empty')), 10, stderr=r'holds no crdtsync replica yet')
    os.mkdir(env.path('other'))
    open(env.path('other', 'notes.txt'), 'w').write('mine')
    expect(env.run('exec', '--data', env.path('other'), TASKS), 10, stderr=r"not a crdtsync replica.*'notes\.txt'")
    check(sorted(os.listdir(env.path('other'))) == ['notes.txt'], 'nothing created in a foreign directory')
    open(env.path('file'), 'w').write('x')
    expect(env.run('stat', '--data', env.path('file')), 10, stderr=r'not a directory')
    expect(env.run('conflicts', '--data', env.path('missing')), 10)
    expect(env.run('snapshot', 'export', '--data', env.path('missing'), env.path('s')), 10)
    # a server directory is not a replica and a replica is not a server directory
    expect(env.run('exec', '--data', env.path('a'), TASKS), 0)
    expect(env.run('serve', '--data', env.path('a'), '--listen', '127.0.0.1:0'), 10, stderr=r'is a replica directory')


@case('local')
def corrupt_replica(env):
    os.mkdir(env.path('garbage'))
    with open(env.path('garbage', 'replica.mdb'), 'wb') as f:
        f.write(os.urandom(64 * 1024))
    expect(env.run('stat', '--data', env.path('garbage')), 11, stderr=r'cannot open the replica.*not an LMDB database')
    expect(env.run('exec', '--data', env.path('a'), TASKS + "; INSERT INTO tasks VALUES (1, 'x', NULL)"), 0)
    path = env.path('a', 'replica.mdb')
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) // 2)
    r = expect(env.run('dump', '--data', env.path('a')), 11, stderr=r'damaged|truncated|not an LMDB')
    check('Bus error' not in r.stderr, 'no SIGBUS')


@case('local')
def locked_directory(env):
    a = env.path('a')
    expect(env.run('exec', '--data', a, TASKS), 0)
    expect(env.run('exec', '--data', env.path('x'), TASKS), 0)
    snap = env.path('x.snapshot')
    expect(env.run('snapshot', 'export', '--data', env.path('x'), snap), 0)
    holder = open(os.path.join(a, 'crdtsync.lock'), 'w')
    holder.write('pid 4242, crdtsync sync --watch\n')
    holder.flush()
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        expect(env.run('sync', '--data', a, '--server', 'ws://127.0.0.1:1/sync/ws', '--db', 'd'), 12,
               stderr=r'in use by another crdtsync process \(pid 4242, crdtsync sync --watch\)')
        expect(env.run('snapshot', 'import', '--data', a, snap), 12, stderr=r'in use')
        expect(env.run('exec', '--data', a, "INSERT INTO tasks VALUES (1, 'x', NULL)"), 0)  # exec does not lock
        os.mkdir(env.path('srv'))
        with open(env.path('srv', 'crdtsync.lock'), 'w') as srv:
            fcntl.flock(srv, fcntl.LOCK_EX | fcntl.LOCK_NB)
            expect(env.run('serve', '--data', env.path('srv'), '--listen', '127.0.0.1:0'), 12, stderr=r'in use')
    finally:
        holder.close()


@case('local')
def snapshot_export_import(env):
    a, b = env.path('a'), env.path('b')
    expect(env.run('exec', '--data', a, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NULL)"), 0)
    values = ', '.join("(%d, 'value %d')" % (i, i) for i in range(3000))
    expect(env.run('exec', '--data', a, '-', input='INSERT INTO t VALUES ' + values), 0)
    expect(env.run('exec', '--data', a, 'DELETE FROM t WHERE id = 7'), 0)
    snap = env.path('a.snapshot')
    expect(env.run('snapshot', 'export', '--data', a, snap), 0, stderr=r'exported snapshot')
    lines = open(snap).read().splitlines()
    check(json.loads(lines[0])['type'] == 'header' and json.loads(lines[-1])['type'] == 'footer', 'one chunk a line')
    check(not os.path.exists(snap + '.partial'), 'no partial file left')
    # An import cut short resumes where it stopped.
    part = env.path('part.snapshot')
    open(part, 'w').write('\n'.join(lines[:4]) + '\n')
    expect(env.run('snapshot', 'import', '--data', b, part), 6, stderr=r'ends before the snapshot.s footer')
    j = json.loads(expect(env.run('stat', '--data', b, '--format', 'json'), 0).stdout)
    check(j['snapshotLoad'] and j['snapshotLoad']['entries'] > 0, 'an unfinished load', j)
    expect(env.run('snapshot', 'import', '--data', b, snap), 0, r'imported snapshot', r'resuming the import')
    check(state(env, 'a') == state(env, 'b'), 'the imported replica equals the exported one')
    # stdout export, and errors
    r = expect(env.run('snapshot', 'export', '--data', a, '-'), 0)
    check(r.stdout.count('\n') == len(lines), 'export to stdout')
    expect(env.run('snapshot', 'import', '--data', a, snap), 6, stderr=r'taken of this replica itself')
    bad = env.path('bad.snapshot')
    open(bad, 'w').write('{"type": "footer"}\n')
    expect(env.run('snapshot', 'import', '--data', env.path('c'), bad), 6, stderr=r'line 1')
    open(bad, 'w').write('not json\n')
    expect(env.run('snapshot', 'import', '--data', env.path('c'), bad), 6, stderr=r'not a snapshot chunk')
    check(not os.path.exists(env.path('c')), 'a bad file creates no replica')
    expect(env.run('snapshot', 'import', '--data', env.path('c'), env.path('missing')), 5, stderr=r'cannot read')
    expect(env.run('snapshot', 'export', '--data', a, env.path('no', 'such', 'dir', 'f')), 5, stderr=r'cannot write')


@case('local')
def disk_full(env):
    mnt = env.path('small')
    os.mkdir(mnt)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], capture_output=True)
    if r.returncode != 0:
        print('  (skipped: cannot mount a small tmpfs here: %s)' % r.stderr.decode().strip())
        return
    env.mounts.append(mnt)
    d = os.path.join(mnt, 'a')
    expect(env.run('exec', '--data', d, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NULL)"), 0)
    values = ', '.join("(%d, '%s')" % (i, 'x' * 200) for i in range(20000))
    expect(env.run('exec', '--data', d, '-', input='INSERT INTO t VALUES ' + values), 13,
           stderr=r'(full|space).*nothing was written')
    expect(env.run('exec', '--data', d, "INSERT INTO t VALUES (1, 'small')"), 0)


@case('local')
def conflicts_empty(env):
    expect(env.run('exec', '--data', env.path('a'), TASKS), 0)
    expect(env.run('conflicts', '--data', env.path('a')), 0, r'^no conflicts\n$')
    expect(env.run('conflicts', '--data', env.path('a'), '--format', 'json'), 0, r'^\[\]\n$')

# ---------------------------------------------------------------- net


def sync(env, data, url, db='notes', *extra, code=0, stdout=None, stderr=None, timeout=60):
    return expect(env.run('sync', '--data', env.path(data), '--server', url, '--db', db, *extra, timeout=timeout),
                  code, stdout, stderr)


@case('net')
def sync_once_both_ways(env):
    s = serve(env)
    expect(env.run('exec', '--data', env.path('a'), TASKS + "; INSERT INTO tasks VALUES (1, 'from a', NULL)"), 0)
    sync(env, 'a', s.url, stdout=r'synced .* sent 1 change set')
    sync(env, 'b', s.url, stdout=r'bootstrapped from a snapshot')
    check(rows(env, 'b') == [{'id': 1, 'title': 'from a', 'done': None}], 'b has a\'s row', rows(env, 'b'))
    expect(env.run('exec', '--data', env.path('b'), "UPDATE tasks SET done = TRUE WHERE id = 1"), 0)
    sync(env, 'b', s.url)
    sync(env, 'a', s.url, stdout=r'received 1 change set\(s\) \(1 facts: 1 applied')
    check(state(env, 'a') == state(env, 'b'), 'a and b identical')
    # The URL without a path means the server's path.
    sync(env, 'a', s.url[:-len('/sync/ws')])
    # A second database is a separate replica on the server.
    sync(env, 'c', s.url, 'other')
    check(sorted(os.listdir(env.path('server'))) == ['crdtsync.lock', 'notes', 'other'], 'one directory per database',
          os.listdir(env.path('server')))
    check(stop(s) == 0, 'serve exits 0 on SIGTERM')
    # The server's replicas are replica directories the tool reads.
    check(rows(env, 'server/notes') == rows(env, 'a'), 'the server holds the rows')


@case('net')
def auth_tokens(env):
    tokens = env.path('tokens')
    open(tokens, 'w').write('# database token\nnotes s3cret-notes\n* master-key\n')
    s = serve(env, extra=('--token-file', tokens))
    sync(env, 'a', s.url, code=22, stderr=r'AUTH_FAILED: no token for database .notes.')
    sync(env, 'a', s.url, 'notes', '--token', 'wrong', code=22, stderr=r'AUTH_FAILED: wrong token')
    sync(env, 'a', s.url, 'notes', '--token', 's3cret-notes')
    sync(env, 'a', s.url, 'notes', '--token', 'master-key')
    sync(env, 'b', s.url, 'other', '--token', 'master-key')
    sync(env, 'c', s.url, '../escape', '--token', 'master-key', code=22, stderr=r'invalid database id')
    mine = env.path('mine.token')
    open(mine, 'w').write('s3cret-notes\n')
    sync(env, 'a', s.url, 'notes', '--token-file', mine)
    open(mine, 'w').write('elsewhere nope\nnotes s3cret-notes\n')
    sync(env, 'a', s.url, 'notes', '--token-file', mine)
    open(mine, 'w').write('elsewhere nope\n')
    sync(env, 'a', s.url, 'notes', '--token-file', mine, code=2, stderr=r'no token for database')
    sync(env, 'a', s.url, 'notes', '--token-file', env.path('missing'), code=5)
    _, _, metrics = http_get(s.http + '/metrics')
    m = re.search(r'^crdtsync_handshakes_refused_total\{reason="auth_failed"\} (\d+)$', metrics, re.M)
    check(m and int(m.group(1)) == 3, 'refusals counted in /metrics', metrics)
    check(stop(s) == 0, 'serve exits 0')
    log = env.log('server')
    check('s3cret' not in log and 'master-key' not in log and 'wrong' not in log.replace('wrong token', ''),
          'tokens never logged', log)
    # A bare token in a server's token file is refused.
    open(tokens, 'w').write('lonely\n')
    expect(env.run('serve', '--data', env.path('server2'), '--listen', '127.0.0.1:0', '--token-file', tokens), 2,
           stderr=r'database-id token')


@case('net')
def network_errors(env):
    sync(env, 'a', 'http://127.0.0.1:80/x', code=20, stderr=r'not a WebSocket URL')
    sync(env, 'a', 'ws://', code=20)
    sync(env, 'a', 'wss://127.0.0.1:9/sync/ws', code=20, stderr=r'wss://')
    port = free_port()
    sync(env, 'a', 'ws://127.0.0.1:%d/sync/ws' % port, code=21, stderr=r'cannot reach .*refused')
    # A listener that never answers: the sync gives up at --timeout.
    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(8)
    try:
        t0 = time.time()
        sync(env, 'a', 'ws://127.0.0.1:%d/sync/ws' % silent.getsockname()[1], 'notes', '--timeout', '1', code=21,
             stderr=r'cannot reach')
        check(time.time() - t0 < 5, 'the timeout is kept')
        # SIGINT cuts a sync (without --watch) short: not a success.
        p = env.spawn('cut', 'sync', '--data', env.path('a'), '--server', 'ws://127.0.0.1:%d/sync/ws' % silent.getsockname()[1],
                      '--db', 'notes', '--timeout', '30')
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        check(p.wait(5) == 24 and 'interrupted' in env.log('cut'), 'SIGINT: exit code 24', env.log('cut'))
    finally:
        silent.close()
    s = serve(env)
    sync(env, 'a', s.url.replace('/sync/ws', '/elsewhere'), code=20, stderr=r'declined the WebSocket upgrade')
    expect(env.run('serve', '--data', env.path('server2'), '--listen', s.url[len('ws://'):-len('/sync/ws')]), 25,
           stderr=r'Address already in use')
    expect(env.run('serve', '--data', env.path('server2'), '--listen', '127.0.0.1:70000'), 2, stderr=r'0 to 65535')
    expect(env.run('serve', '--data', env.path('server2'), '--listen', 'nonsense'), 2, stderr=r'ADDRESS:PORT')
    expect(env.run('serve', '--data', env.path('server'), '--listen', '127.0.0.1:0'), 12, stderr=r'in use')


class FakeServer:
    """A WebSocket server that answers every handshake with one message."""

    def __init__(self, reply):
        self.reply = json.dumps(reply).encode()
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            req = b''
            while b'\r\n\r\n' not in req:
                req += conn.recv(4096)
            key = re.search(rb'Sec-WebSocket-Key: *(\S+)', req, re.I).group(1)
            accept = base64.b64encode(hashlib.sha1(key + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest())
            conn.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
                         b'Sec-WebSocket-Accept: ' + accept + b'\r\n\r\n')
            conn.recv(65536)  # the client's handshake message
            n = len(self.reply)
            head = bytes([0x81, n]) if n < 126 else bytes([0x81, 126, n >> 8, n & 255])
            conn.sendall(head + self.reply)
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass

    def close(self):
        self.sock.close()


@case('net')
def protocol_version_mismatch(env):
    fake = FakeServer({'type': 'error', 'code': 'PROTOCOL_VERSION_MISMATCH',
                       'message': 'sync protocol version mismatch: server speaks v2', 'fatal': True})
    try:
        sync(env, 'a', 'ws://127.0.0.1:%d/sync/ws' % fake.port, code=23, stderr=r'PROTOCOL_VERSION_MISMATCH')
    finally:
        fake.close()


def parse_prometheus(text):
    """Checks Prometheus text-format rules; returns {sample name with labels: value}."""
    help_, type_, samples = {}, {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith('# HELP '):
            name = line.split()[2]
            check(name not in help_, 'one HELP line per metric', name)
            help_[name] = line
            continue
        if line.startswith('# TYPE '):
            _, _, name, kind = line.split()
            check(kind in ('counter', 'gauge', 'histogram', 'summary', 'untyped'), 'a known type', line)
            check(name in help_, 'HELP before TYPE', name)
            type_[name] = kind
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? '
                     r'(-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$', line)
        check(m, 'a valid sample line', line)
        name = m.group(1)
        check(name in type_, 'TYPE before the samples', name)
        float(m.group(4))
        samples[name + (m.group(2) or '')] = float(m.group(4))
    for name, kind in type_.items():
        if kind == 'counter':
            check(name.endswith('_total'), 'a counter name ends in _total', name)
        check(any(s == name or s.startswith(name + '{') for s in samples), 'every metric has a sample', name)
    return samples


@case('net')
def status_and_metrics(env):
    s = serve(env)
    expect(env.run('exec', '--data', env.path('a'), TASKS + "; INSERT INTO tasks VALUES (1, 'x', NULL)"), 0)
    sync(env, 'a', s.url)
    w = env.spawn('watch', 'sync', '--data', env.path('b'), '--server', s.url, '--db', 'notes', '--watch')
    wait_until(lambda: 'live' in env.log('watch'), 10, 'the client to be live')
    code, ctype, body = http_get(s.http + '/status')
    st = json.loads(body)
    check(code == 200 and ctype.startswith('application/json'), 'status is JSON', ctype)
    check(st['version'] and st['protocolVersion'] == 1 and st['uptimeSeconds'] >= 0, 'status fields', st)
    check([d['id'] for d in st['databases']] == ['notes'] and st['databases'][0]['position'] > 0 and
          st['databases'][0]['connections'] == 1, 'status databases', st)
    check(len(st['connections']) == 1 and st['connections'][0]['database'] == 'notes' and st['connections'][0]['live'],
          'status connections', st)
    code, ctype, body = http_get(s.http + '/metrics')
    check(ctype.startswith('text/plain; version=0.0.4'), 'metrics content type', ctype)
    m = parse_prometheus(body)
    check(m['crdtsync_connections'] == 1 and m['crdtsync_handshakes_total'] == 2 and
          m['crdtsync_change_sets_received_total'] >= 1 and m['crdtsync_facts_applied_total'] >= 4 and
          m['crdtsync_snapshot_chunks_sent_total'] >= 1 and m['crdtsync_sent_bytes_total'] > 0 and
          m['crdtsync_received_bytes_total'] > 0, 'metric values', m)
    try:
        http_get(s.http + '/nothing')
        check(False, '404 for an unknown path')
    except urllib.error.HTTPError as e:
        check(e.code == 404, '404', e.code)
    check(stop(w) == 0, 'the watcher exits 0 on SIGTERM')
    check(stop(s) == 0, 'serve exits 0')


@case('net')
def watch_live_and_reconnect(env):
    port = free_port()
    url = 'ws://127.0.0.1:%d/sync/ws' % port
    # Clients start before the server: they retry with backoff, and say so.
    watchers = [env.spawn(n, 'sync', '--data', env.path(n), '--server', url, '--db', 'notes', '--watch', '--retry-max', '1')
                for n in ('a', 'b')]
    wait_until(lambda: 'reconnecting in' in env.log('a'), 10, 'a retry message')
    s = serve(env, port=port)
    wait_until(lambda: 'live' in env.log('a') and 'live' in env.log('b'), 10, 'both live')
    expect(env.run('exec', '--data', env.path('a'), TASKS + "; INSERT INTO tasks VALUES (1, 'live', NULL)"), 0)
    wait_until(lambda: dump_json(env, 'b') and 'live' in dump_json(env, 'b'), 10, 'the live push to reach b')
    # The server restarts; the clients reconnect and catch up.
    check(stop(s) == 0, 'serve exits 0')
    wait_until(lambda: 'the server is shutting down' in env.log('a'), 5, 'a notices the shutdown')
    expect(env.run('exec', '--data', env.path('b'), "INSERT INTO tasks VALUES (2, 'offline', NULL)"), 0)
    s = serve(env, 'server2', port=port)
    wait_until(lambda: dump_json(env, 'a') and dump_json(env, 'a') == dump_json(env, 'b') and 'offline' in dump_json(env, 'a'),
               15, 'a and b to converge after the restart')
    for w in watchers:
        w.send_signal(signal.SIGINT)
        check(w.wait(5) == 0, 'a watcher exits 0 on SIGINT', env.log(w.name))
    check(stop(s) == 0, 'serve exits 0')


@case('net')
def sigterm_with_clients(env):
    s = serve(env)
    watchers = [env.spawn(n, 'sync', '--data', env.path(n), '--server', s.url, '--db', 'notes', '--watch')
                for n in ('a', 'b', 'c')]
    wait_until(lambda: all('live' in env.log(n) for n in 'abc'), 10, 'three live clients')
    t0 = time.time()
    s.send_signal(signal.SIGTERM)
    code = s.wait(5)
    took = time.time() - t0
    # 2 s for a release build; a sanitizer build's exit (leak check) is slower.
    limit = 6 if sanitized() else 2
    check(code == 0 and took < limit, 'SIGTERM ends the server with 0 within %d s (took %.2f s)' % (limit, took),
          env.log('server'))
    wait_until(lambda: all('shutting down' in env.log(n) for n in 'abc'), 5, 'the clients to hear going away')
    for w in watchers:
        w.send_signal(signal.SIGTERM)
        check(w.wait(5) == 0, 'a watcher exits 0 on SIGTERM')

# ---------------------------------------------------------------- multiprocess


@case('multiprocess')
def random_writes_converge(env):
    s = serve(env)
    names = ['a', 'b', 'c']
    expect(env.run('exec', '--data', env.path('a'), TASKS), 0)
    for n in names:
        env.spawn(n, 'sync', '--data', env.path(n), '--server', s.url, '--db', 'notes', '--watch', '--retry-max', '1')
    wait_until(lambda: all(dump_json(env, n) and 'main.tasks' in dump_json(env, n) for n in names), 15, 'the table everywhere')

    concurrent_random_writes(env, names, rounds=12, keys=8)
    wait_until(lambda: len({state(env, n) for n in names}) == 1, 20, 'three identical replicas')
    check(state(env, 'a') == state(env, 'server/notes'), 'the server equals the clients')
    check(stop(s) == 0, 'serve exits 0')


@case('multiprocess')
def client_killed_mid_sync(env):
    s = serve(env)
    values = ', '.join("(%d, 'task %d', NULL)" % (i, i) for i in range(30000))
    expect(env.run('exec', '--data', env.path('a'), '-', input=TASKS + '; INSERT INTO tasks VALUES ' + values), 0)
    sync(env, 'a', s.url, timeout=120)
    # b bootstraps the 90,000-cell snapshot and is killed part way, up to three
    # times. How long a load takes depends on the build and the machine's load,
    # so the delay before the kill adapts: when a kill came after the load had
    # finished, b starts again empty and the next kill comes sooner.
    rnd = random.Random()
    delay = 0.3
    interrupted = []
    for attempt in range(10):
        name = 'b%d' % attempt
        p = env.spawn(name, 'sync', '--data', env.path('b'), '--server', s.url, '--db', 'notes')
        wait_until(lambda: 'bootstrapping' in env.log(name) or p.poll() is not None, 30, 'the snapshot to start')
        time.sleep(rnd.uniform(0, delay))
        if p.poll() is None:
            p.kill()
            p.wait()
        r = env.run('stat', '--data', env.path('b'), '--format', 'json')
        st = json.loads(r.stdout) if r.returncode == 0 else {}
        load = st.get('snapshotLoad')
        if load:
            interrupted.append(load['entries'])
            if len(interrupted) == 3:
                break
        elif not st.get('tables'):
            delay *= 2  # killed before the first chunk landed
        elif interrupted:
            break  # a resumed load finished; the sync below checks what it holds
        else:
            shutil.rmtree(env.path('b'), ignore_errors=True)  # finished before the kill
            delay /= 2
    print('  %d kill(s) interrupted the snapshot load, at %s entries' % (len(interrupted), interrupted))
    check(interrupted, 'a kill interrupted the snapshot load')
    sync(env, 'b', s.url, timeout=120)
    check(rows(env, 'b') == rows(env, 'a'), 'b converged after the kills')
    check(stop(s) == 0, 'serve exits 0')


@case('multiprocess')
def server_killed_loses_nothing_acknowledged(env):
    port = free_port()
    url = 'ws://127.0.0.1:%d/sync/ws' % port
    s = serve(env, port=port)
    expect(env.run('exec', '--data', env.path('a'), TASKS), 0)
    sync(env, 'a', url)
    acknowledged = []
    stop_at = time.time() + 1.0
    i = 0
    restarts = 0
    while i < 40:
        expect(env.run('exec', '--data', env.path('a'), "INSERT INTO tasks VALUES (%d, 'row %d', NULL)" % (i, i)), 0)
        r = env.run('sync', '--data', env.path('a'), '--server', url, '--db', 'notes', '--timeout', '5')
        if r.returncode == 0:
            acknowledged.append(i)
        if time.time() > stop_at and restarts < 2:
            s.kill()  # SIGKILL, whatever it was doing
            s.wait()
            s = serve(env, 'server%d' % restarts, port=port)
            restarts += 1
            stop_at = time.time() + 0.5
        i += 1
    s.kill()
    s.wait()
    held = {r['id'] for r in rows(env, 'server/notes')}
    missing = [k for k in acknowledged if k not in held]
    check(not missing, 'every acknowledged row survived the SIGKILLs', missing)
    s = serve(env, 'final', port=port)
    sync(env, 'a', url)
    sync(env, 'fresh', url)
    check(rows(env, 'fresh') == rows(env, 'a') and len(rows(env, 'a')) == 40, 'nothing lost in the end')
    check(stop(s) == 0, 'serve exits 0')


# ---------------------------------------------------------------- cluster

NATS_SERVER = os.environ.get('NATS_SERVER', 'nats-server')


def nats(env, name, port=None, cluster=None, store=None, config=None):
    """A nats-server with JetStream on loopback; `cluster` = (cluster port, [route ports]) joins a cluster;
    `config`: lines of a configuration file (given first, as nats-server wants)."""
    port = port or free_port()
    argv = [NATS_SERVER]
    if config:
        with open(env.path(name + '.conf'), 'w') as f:
            f.write(config)
        argv += ['-c', env.path(name + '.conf')]
    argv += ['-js', '-a', '127.0.0.1', '-p', str(port), '-sd', env.path((store or name) + '-store'),
            '--server_name', name]
    if cluster:
        cport, routes = cluster
        argv += ['--cluster_name', 'crdtsync-test', '--cluster', 'nats://127.0.0.1:%d' % cport,
                 '--routes', ','.join('nats://127.0.0.1:%d' % r for r in routes)]
    p = env.spawn_cmd(name, argv)
    wait_until(lambda: 'Server is ready' in env.log(name) or p.poll() is not None, 15, 'nats-server to start')
    check(p.poll() is None, 'nats-server exited', env.log(name))
    p.port = port
    p.url = 'nats://127.0.0.1:%d' % port
    return p


def node(env, name, nats_urls, *extra, port=0):
    return serve(env, name, name, port=port, extra=('--cluster', ','.join(nats_urls), '--cluster-snapshot-interval', '1',
                                                     '--cluster-ack-timeout', '3', *extra))


def cluster_metrics(s, db='notes'):
    """The node's crdtsync_cluster_* metrics of database `db`, by name without the prefix."""
    try:
        _, _, text = http_get(s.http + '/metrics')
    except (OSError, urllib.error.URLError):
        return {}
    out = {}
    for line in text.splitlines():
        m = re.match(r'crdtsync_cluster_(\w+)(?:\{database="([^"]*)"\})? (\S+)$', line)
        if m and (m.group(2) is None or m.group(2) == db):
            out[m.group(1)] = float(m.group(3))
    return out


def caught_up(s, db='notes'):
    return cluster_metrics(s, db).get('caught_up') == 1


def ids(env, data):
    d = dump_json(env, data)
    if not d:
        return set()
    t = json.loads(d).get('main.tasks')
    return {r['id'] for r in t['rows']} if t else set()


@case('cluster')
def cluster_three_nodes_converge(env):
    n = nats(env, 'nats')
    nodes = [node(env, 'n%d' % i, [n.url]) for i in (1, 2, 3)]
    expect(env.run('exec', '--data', env.path('a'), TASKS + "; INSERT INTO tasks VALUES (1, 'from a', NULL)"), 0)
    sync(env, 'a', nodes[0].url)
    m = cluster_metrics(nodes[0])
    # The apply_result waited for the stream: nothing was acknowledged locally only.
    check(m.get('published_messages_total', 0) >= 1 and m.get('local_acks_total') == 0,
          'node 1 published before acknowledging', m)
    # Acknowledged on node 1, it reaches a client of node 3.
    wait_until(lambda: sync(env, 'b', nodes[2].url) and 1 in ids(env, 'b'), 20, "a's row at a client of node 3")

    # Clients on different nodes write concurrently, live.
    names = ['a', 'b', 'c']
    for i, c in enumerate(names):
        env.spawn('w' + c, 'sync', '--data', env.path(c), '--server', nodes[i].url, '--db', 'notes', '--watch',
                  '--retry-max', '1')
    wait_until(lambda: all(dump_json(env, c) and 'main.tasks' in dump_json(env, c) for c in names), 20,
               'the table at every client')
    concurrent_random_writes(env, names, rounds=15, keys=10)
    wait_until(lambda: len({state(env, c) for c in names}) == 1, 30, 'three identical clients')
    wait_until(lambda: all(caught_up(s) for s in nodes), 20, 'every node caught up')
    final = state(env, 'a')
    for s in nodes:
        check(state(env, s.name + '/notes') == final, 'node %s equals the clients' % s.name)
    st = json.loads(http_get(nodes[1].http + '/status')[2])
    db = st['cluster']['databases'][0]
    check(st['cluster']['connected'] and db['id'] == 'notes' and db['caughtUp'] and db['consumerLag'] == 0 and
          db['streamPosition'] > 0, '/status shows the cluster', st['cluster'])
    for s in nodes:
        check(stop(s) == 0, 'serve exits 0')


@case('cluster')
def cluster_node_killed_and_new_node_bootstraps(env):
    n = nats(env, 'nats')
    # The stream keeps 30 messages: a node that joins later must bootstrap.
    extra = ('--cluster-max-msgs', '30')
    ports = [free_port(), free_port()]
    n1 = node(env, 'n1', [n.url], *extra, port=ports[0])
    n2 = node(env, 'n2', [n.url], *extra, port=ports[1])
    expect(env.run('exec', '--data', env.path('a'), TASKS), 0)
    sync(env, 'a', n1.url)
    acknowledged = []
    for i in range(60):
        expect(env.run('exec', '--data', env.path('a'), "INSERT INTO tasks VALUES (%d, 'row %d', NULL)" % (i, i)), 0)
        r = env.run('sync', '--data', env.path('a'), '--server', n1.url, '--db', 'notes', '--timeout', '5')
        if r.returncode == 0:
            acknowledged.append(i)
        if i == 20:
            n2.kill()  # SIGKILL mid-stream
            n2.wait()
        if i == 30:
            n2 = serve(env, 'n2b', 'n2', port=ports[1], extra=('--cluster', n.url, '--cluster-snapshot-interval', '1', *extra))
        if i == 45:
            n1.kill()  # the node the client writes to dies: what it acknowledged is in the stream
            n1.wait()
            n1 = serve(env, 'n1b', 'n1', port=ports[0], extra=('--cluster', n.url, '--cluster-snapshot-interval', '1', *extra))
    check(len(acknowledged) >= 55, 'most syncs were acknowledged', acknowledged)
    wait_until(lambda: caught_up(n1) and caught_up(n2), 30, 'both nodes caught up after the kills')
    held = ids(env, 'n2/notes')
    missing = [k for k in acknowledged if k not in held]
    check(not missing, 'every acknowledged row reached node 2 through the stream', missing)
    check(state(env, 'n1/notes') == state(env, 'n2/notes'), 'the two nodes are identical')
    # A new node: the stream no longer holds the beginning (30 of 60+ messages).
    time.sleep(1.5)  # a snapshot after the last write
    n3 = node(env, 'n3', [n.url], *extra)
    wait_until(lambda: caught_up(n3), 30, 'the new node caught up')
    m = cluster_metrics(n3)
    check(m.get('bootstraps_total', 0) >= 1, 'the new node bootstrapped from a snapshot', m)
    check(state(env, 'n3/notes') == state(env, 'n1/notes'), 'the new node equals the others')
    sync(env, 'fresh', n3.url)
    check(ids(env, 'fresh') == set(range(60)), 'a client of the new node has every row', sorted(ids(env, 'fresh')))


@case('cluster')
def cluster_nats_server_killed_r3(env):
    ports = [free_port() for _ in range(3)]
    cports = [free_port() for _ in range(3)]
    servers = [nats(env, 'nats%d' % i, ports[i], (cports[i], [c for j, c in enumerate(cports) if j != i]))
               for i in range(3)]
    urls = [s.url for s in servers]
    n1 = node(env, 'n1', urls, '--cluster-replicas', '3')
    n2 = node(env, 'n2', urls[::-1], '--cluster-replicas', '3')
    expect(env.run('exec', '--data', env.path('a'), TASKS), 0)
    # JetStream elects its leaders first: the first sync may be acknowledged locally only.
    sync(env, 'a', n1.url)
    wait_until(lambda: caught_up(n1) and caught_up(n2), 60, 'the stream (R=3) ready on both nodes')
    for i in range(5):
        expect(env.run('exec', '--data', env.path('a'), "INSERT INTO tasks VALUES (%d, 'before', NULL)" % i), 0)
        sync(env, 'a', n1.url)
    servers[0].kill()  # one of three NATS servers dies
    servers[0].wait()
    before = cluster_metrics(n1).get('published_messages_total', 0)
    for i in range(5, 15):
        expect(env.run('exec', '--data', env.path('a'), "INSERT INTO tasks VALUES (%d, 'after', NULL)" % i), 0)
        sync(env, 'a', n1.url, timeout=30)
    wait_until(lambda: cluster_metrics(n1).get('published_messages_total', 0) >= before + 10, 30,
               'node 1 publishing with two of three NATS servers')
    wait_until(lambda: ids(env, 'n2/notes') == set(range(15)), 30, 'node 2 has every row')
    sync(env, 'b', n2.url)
    check(ids(env, 'b') == set(range(15)), 'a client of node 2 has every row')


@case('cluster')
def cluster_nats_unreachable(env):
    port = free_port()
    url = 'nats://127.0.0.1:%d' % port
    n1 = node(env, 'n1', [url])
    wait_until(lambda: 'cannot reach NATS' in env.log('n1'), 10, 'the node to say NATS is unreachable')
    # The node serves its clients meanwhile: acknowledged by its own commit.
    expect(env.run('exec', '--data', env.path('a'), TASKS + "; INSERT INTO tasks VALUES (1, 'offline', NULL)"), 0)
    sync(env, 'a', n1.url)
    m = cluster_metrics(n1)
    check(m.get('connected') == 0 and m.get('local_acks_total', 0) >= 1 and m.get('unpublished_messages', 0) >= 1,
          'acknowledged locally, waiting to publish', m)
    n = nats(env, 'nats', port)
    wait_until(lambda: caught_up(n1), 20, 'node 1 published what it accepted once NATS answered')
    n2 = node(env, 'n2', [url])
    wait_until(lambda: 1 in ids(env, 'n2/notes'), 20, 'node 2 has the row accepted while NATS was down')
    # NATS dies during the run and comes back with its store.
    n.kill()
    n.wait()
    wait_until(lambda: cluster_metrics(n1).get('connected') == 0, 10, 'node 1 sees NATS gone')
    expect(env.run('exec', '--data', env.path('a'), "INSERT INTO tasks VALUES (2, 'during', NULL)"), 0)
    sync(env, 'a', n1.url)
    n = nats(env, 'nats-again', port, store='nats')
    wait_until(lambda: 2 in ids(env, 'n2/notes'), 30, 'node 2 has the row accepted during the outage')
    wait_until(lambda: caught_up(n1) and caught_up(n2), 20, 'both caught up')
    check(state(env, 'n1/notes') == state(env, 'n2/notes'), 'the nodes are identical')
    codes = [stop(n1), stop(n2)]
    check(codes == [0, 0], 'serve exits 0', codes, env.log('n1')[-1500:], env.log('n2')[-1500:])


@case('cluster')
def cluster_batches_larger_than_max_payload(env):
    # NATS takes at most 64 KiB a message here: a client batch of about
    # 180 KiB is split into several stream messages, each with its own id
    # (JetStream drops a message whose id it saw: none may be lost so).
    n = nats(env, 'nats', config='max_payload: 65536\n')
    n1 = node(env, 'n1', [n.url])
    n2 = node(env, 'n2', [n.url])
    expect(env.run('exec', '--data', env.path('a'), TASKS), 0)
    body = 'x' * 400
    for t in range(40):
        values = ', '.join("(%d, '%s', NULL)" % (t * 10 + i, body) for i in range(10))
        expect(env.run('exec', '--data', env.path('a'), 'INSERT INTO tasks VALUES ' + values), 0)
    sync(env, 'a', n1.url)
    m = cluster_metrics(n1)
    check(m.get('published_messages_total', 0) >= 4 and m.get('local_acks_total') == 0,
          'the batch went as several messages, acknowledged by the stream', m)
    wait_until(lambda: ids(env, 'n2/notes') == set(range(400)), 20, 'node 2 has every row')
    check(state(env, 'n2/notes') == state(env, 'n1/notes'), 'the nodes are identical')


def main():
    global BIN
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    BIN = os.path.abspath(sys.argv[1])
    group = sys.argv[2]
    only = sys.argv[3] if len(sys.argv) > 3 else ''
    passed = failed = 0
    for g, name, fn in CASES:
        if g != group or only not in name:
            continue
        env = Env()
        t0 = time.time()
        try:
            fn(env)
            passed += 1
            print('ok     %s (%.1f s)' % (name, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print('FAILED %s (%.1f s)' % (name, time.time() - t0), flush=True)
            traceback.print_exc(file=sys.stdout)
            for p in env.procs:
                try:
                    print('--- %s stderr:\n%s' % (p.name, env.log(p.name)[-3000:]))
                except OSError:
                    pass
        finally:
            env.close()
    # The summary line scripts/count-tests.py reads.
    print('[doctest] test cases: %d | %d passed | %d failed' % (passed + failed, passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == '__main__':
    sys.exit(main())
