<?php
// pheanstalk (Debian's php-pda-pheanstalk) against a running sprout.
// argv: HOST PORT MAX_JOB_SIZE. Prints "ok - NAME" or "not ok - NAME: why".
// pheanstalk 4 has no reserve-job; everything else it exposes is checked.

require_once '/usr/share/php/Pheanstalk/autoload.php';

use Pheanstalk\Pheanstalk;
use Pheanstalk\JobId;
use Pheanstalk\Exception;

[$_, $host, $port, $max] = $argv;
$port = (int) $port;
$max = (int) $max;
$failed = 0;

$version = trim((string) shell_exec("dpkg-query -W -f '\${Version}' php-pda-pheanstalk 2>/dev/null")) ?: '?';
echo "client pheanstalk $version\n";

function check(string $name, callable $fn): void
{
    global $failed;
    try {
        $fn();
        echo "ok - $name\n";
    } catch (\Throwable $e) {
        $failed++;
        echo "not ok - $name: " . get_class($e) . ': ' . substr($e->getMessage(), 0, 200)
            . ' (line ' . $e->getLine() . ")\n";
    }
}

// pheanstalk 4 reads YAML line by line and keeps each value's raw text:
// a name sprout writes bare comes back as it is, one it quotes (because
// a YAML parser would misread it) with its quotes.
function tube_names(): array
{
    $names = [];
    foreach (file(__DIR__ . '/tube_names.txt', FILE_IGNORE_NEW_LINES) as $line) {
        if ($line !== '' && $line[0] !== '#') {
            [$name, $how] = explode(' ', $line);
            $names[$name] = $how === 'quoted';
        }
    }
    return $names;
}

function same($want, $got): void
{
    if ($want !== $got) {
        throw new \RuntimeException('expected ' . substr(var_export($want, true), 0, 80)
            . ', got ' . substr(var_export($got, true), 0, 80));
    }
}

function raises(string $class, callable $fn): void
{
    try {
        $fn();
    } catch (\Throwable $e) {
        if ($e instanceof $class) {
            return;
        }
        throw new \RuntimeException("expected $class, got " . get_class($e) . ': ' . $e->getMessage());
    }
    throw new \RuntimeException("expected $class");
}

function eventually(callable $cond): void
{
    $deadline = microtime(true) + 3;
    while (microtime(true) < $deadline) {
        if ($cond()) {
            return;
        }
        usleep(50000);
    }
    throw new \RuntimeException('condition did not hold in time');
}

$c = Pheanstalk::create($host, $port);

check('use, watch, ignore and the list commands', function () use ($c) {
    $c->useTube('php-a');
    same('php-a', $c->listTubeUsed(true));
    $c->watch('php-a')->watch('php-b')->ignore('default');
    $watched = $c->listTubesWatched(true);
    sort($watched);
    same(['php-a', 'php-b'], $watched);
    $c->ignore('php-b');
    same(['php-a'], $c->listTubesWatched(true));
    $tubes = $c->listTubes();
    same(true, in_array('default', $tubes, true) && in_array('php-a', $tubes, true));
});

check('put with priority, delay and TTR, read back by stats-job', function () use ($c) {
    $job = $c->put('delayed', 42, 30, 77);
    $st = $c->statsJob($job);
    same(['42', '30', '77', 'delayed', 'php-a'],
        [$st['pri'], $st['delay'], $st['ttr'], $st['state'], $st['tube']]);
    same($job->getId(), $c->peekDelayed()->getId());
    $c->delete($job);
    raises(Exception\JobNotFoundException::class, fn () => $c->peek($job));
});

check('reserve, reserve with timeout, delete', function () use ($c) {
    same(null, $c->reserveWithTimeout(0));
    $low = $c->put('low', 5);
    $high = $c->put('high', 1);
    $job = $c->reserveWithTimeout(1);
    same([$high->getId(), 'high'], [$job->getId(), $job->getData()]);
    $c->delete($job);
    same($low->getId(), $c->reserve()->getId());
    $c->delete($low);
    raises(Exception\JobNotFoundException::class, fn () => $c->delete($low));
});

check('release with priority and delay; touch', function () use ($c) {
    $id = $c->put('again', 0, 0, 20)->getId();
    $job = $c->reserveWithTimeout(1);
    same($id, $job->getId());
    usleep(1100000);
    $c->touch($job);
    same(true, (int) $c->statsJob($job)['time-left'] >= 19);
    $c->release($job, 7, 1);
    $st = $c->statsJob($job);
    same(['delayed', '7', '1'], [$st['state'], $st['pri'], $st['releases']]);
    eventually(fn () => $c->statsJob($job)['state'] === 'ready');
    same($id, $c->peekReady()->getId());
    $c->delete($job);
});

check('bury, peek-buried, kick, kick-job', function () use ($c) {
    $ids = [];
    for ($i = 0; $i < 3; $i++) {
        $ids[] = $c->put("b$i")->getId();
    }
    for ($i = 0; $i < 3; $i++) {
        $c->bury($c->reserveWithTimeout(1), 9);
    }
    same($ids[0], $c->peekBuried()->getId());
    $st = $c->statsJob(new JobId($ids[0]));
    same(['buried', '9', '1'], [$st['state'], $st['pri'], $st['buries']]);
    same(2, $c->kick(2));
    same($ids[2], $c->peekBuried()->getId());
    $c->kickJob(new JobId($ids[2]));
    same('1', $c->statsJob(new JobId($ids[2]))['kicks']);
    raises(Exception\JobNotFoundException::class, fn () => $c->kickJob(new JobId($ids[2])));
    same(null, $c->peekBuried());
    foreach ($ids as $id) {
        $c->delete(new JobId($id));
    }
});

check('tube names read back by stats-job and stats-tube', function () use ($c) {
    try {
        foreach (tube_names() as $name => $quoted) {
            $name = (string) $name; // PHP makes numeric array keys integers
            $c->useTube($name);
            $job = $c->put('x');
            $want = $quoted ? "\"$name\"" : $name;
            $got = [$c->statsJob($job)['tube'], $c->statsTube($name)['name']];
            $c->delete($job);
            same([$want, $want], $got);
        }
    } finally {
        $c->useTube('php-a');
    }
});

check('stats and stats-tube parsed by pheanstalk; pause-tube', function () use ($c) {
    $st = $c->stats();
    same(true, (int) $st['pid'] > 0);
    foreach (['version', 'hostname', 'os', 'platform', 'id'] as $k) {
        if (!isset($st[$k]) || $st[$k] === '') {
            throw new \RuntimeException("stats $k missing or empty");
        }
    }
    $c->pauseTube('php-a', 2);
    $t = $c->statsTube('php-a');
    same(['php-a', '2'], [$t['name'], $t['pause']]);
    $id = $c->put('while paused')->getId();
    same(null, $c->reserveWithTimeout(0));
    $c->resumeTube('php-a');
    same($id, $c->reserveWithTimeout(1)->getId());
    $c->delete(new JobId($id));
});

check('binary body with every byte value', function () use ($c) {
    $body = str_repeat(implode('', array_map('chr', range(0, 255))), 4) . "\r\n\r\n";
    $id = $c->put($body)->getId();
    $job = $c->reserveWithTimeout(1);
    same([$id, $body], [$job->getId(), $job->getData()]);
    same($body, $c->peek($job)->getData());
    $c->delete($job);
});

check('a body of exactly -z bytes, and one byte more', function () use ($c, $max) {
    $body = str_repeat('z', $max);
    $id = $c->put($body)->getId();
    same($body, $c->reserveWithTimeout(1)->getData());
    $c->delete(new JobId($id));
    raises(Exception\JobTooBigException::class, fn () => $c->put($body . 'z'));
    $c->delete($c->put('after'));
});

check('errors: bad tube name, deadline soon, unknown job', function () use ($c) {
    raises(\Throwable::class, fn () => $c->useTube('no spaces allowed'));
    raises(Exception\ServerException::class, fn () => $c->statsTube('never-made'));
    raises(Exception\JobNotFoundException::class, fn () => $c->bury(new JobId(999999)));
    raises(Exception\JobNotFoundException::class, fn () => $c->touch(new JobId(999999)));
    $job = $c->put('short', 0, 0, 1);
    $c->reserveWithTimeout(1);
    raises(Exception\DeadlineSoonException::class, fn () => $c->reserveWithTimeout(1));
    $c->delete($job);
});

check('a blocked reserve is woken by a put from another connection', function () use ($host, $port) {
    // PHP has no threads here: a child process does the put after 300 ms.
    $pid = pcntl_fork();
    if ($pid === 0) {
        usleep(300000);
        $p = Pheanstalk::create($host, $port);
        $p->useTube('php-wake')->put('wake up');
        exit(0);
    }
    $w = Pheanstalk::create($host, $port);
    $w->watchOnly('php-wake');
    $start = microtime(true);
    $job = $w->reserveWithTimeout(5);
    pcntl_waitpid($pid, $status);
    same('wake up', $job ? $job->getData() : null);
    same(true, microtime(true) - $start >= 0.25);
    $w->delete($job);
});

check('a reserved job is released when its connection closes', function () use ($c, $host, $port) {
    $w = Pheanstalk::create($host, $port);
    $w->watchOnly('php-close');
    $job = $c->withUsedTube('php-close', fn ($p) => $p->put('held'));
    same($job->getId(), $w->reserveWithTimeout(1)->getId());
    same('reserved', $c->statsJob($job)['state']);
    unset($w); // closes the socket
    gc_collect_cycles();
    eventually(fn () => $c->statsJob($job)['state'] === 'ready');
    $c->delete($job);
});

exit($failed === 0 ? 0 : 1);
