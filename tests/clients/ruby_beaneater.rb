# beaneater (Debian's ruby-beaneater) against a running sprout.
# argv: HOST PORT MAX_JOB_SIZE. Prints "ok - NAME" or "not ok - NAME: why".
# beaneater has no reserve-job; everything else it exposes is checked.
require 'beaneater'

HOST, PORT, MAX = ARGV[0], ARGV[1].to_i, ARGV[2].to_i
ADDR = "#{HOST}:#{PORT}"
$failed = 0
puts "client beaneater #{Beaneater::VERSION}"
$stdout.flush

def check(name)
  yield
  puts "ok - #{name}"
rescue Exception => e # rubocop:disable Lint/RescueException
  $failed += 1
  puts "not ok - #{name}: #{e.class}: #{e.message} (#{e.backtrace.first})"
ensure
  $stdout.flush
end

def expect_raises(klass)
  yield
rescue klass
  nil
else
  raise "expected #{klass}"
end

def eventually(within = 3.0)
  deadline = Time.now + within
  until yield
    raise 'condition did not hold in time' if Time.now > deadline
    sleep 0.05
  end
end

def assert_eq(want, got)
  raise "expected #{want.inspect[0, 80]}, got #{got.inspect[0, 80]}" unless want == got
end

# tube_names.txt: the names every client reads back.
TUBE_NAMES = File.readlines(File.join(__dir__, 'tube_names.txt'), chomp: true)
                 .reject { |l| l.empty? || l.start_with?('#') }
                 .map { |l| l.split(' ').first }

c = Beaneater.new(ADDR)

check('use, watch, ignore and the list commands') do
  c.tubes.use('rb-a')
  assert_eq('rb-a', c.tubes.used.name)
  c.tubes.watch!('rb-a', 'rb-b')
  assert_eq(%w[rb-a rb-b], c.tubes.watched.map(&:name).sort)
  c.tubes.ignore('rb-b')
  assert_eq(['rb-a'], c.tubes.watched.map(&:name))
  names = c.tubes.all.map(&:name)
  raise names.inspect unless (%w[default rb-a] - names).empty?
end

check('tube names read back by stats-job and stats-tube (Psych)') do
  TUBE_NAMES.each do |name|
    id = c.tubes[name].put('x')[:id]
    got = [c.jobs.find(id).stats.tube, c.tubes[name].stats.name]
    c.jobs.find(id).delete
    assert_eq([name, name], got)
  end
end

check('put with priority, delay and TTR, read back by stats-job') do
  res = c.tubes['rb-a'].put('delayed', pri: 42, delay: 30, ttr: 77)
  assert_eq('INSERTED', res[:status])
  job = c.jobs.find(res[:id])
  st = job.stats
  assert_eq([42, 30, 77, 'delayed', 'rb-a'], [st.pri, st.delay, st.ttr, st.state, st.tube])
  raise "time-left #{st.time_left}" unless (28..30).cover?(st.time_left)
  assert_eq(job.id, c.tubes['rb-a'].peek(:delayed).id)
  job.delete
  assert_eq(nil, c.jobs.find(job.id))
end

check('reserve, reserve with timeout, delete') do
  expect_raises(Beaneater::TimedOutError) { c.tubes.reserve(0) }
  tube = c.tubes['rb-a']
  low = tube.put('low', pri: 5)[:id]
  high = tube.put('high', pri: 1)[:id]
  job = c.tubes.reserve(1)
  assert_eq([high, 'high', true], [job.id, job.body, job.reserved?])
  job.delete
  job = c.tubes.reserve
  assert_eq(low, job.id)
  job.delete
  expect_raises(Beaneater::NotFoundError) { job.delete }
end

check('release with priority and delay; touch') do
  id = c.tubes['rb-a'].put('again', ttr: 20)[:id]
  job = c.tubes.reserve(1)
  assert_eq(id, job.id)
  sleep 1.1
  job.touch
  raise 'touch did not reset the TTR' unless job.stats.time_left >= 19
  job.release(pri: 7, delay: 1)
  st = job.stats
  assert_eq(['delayed', 7, 1], [st.state, st.pri, st.releases])
  eventually { job.stats.state == 'ready' }
  assert_eq(id, c.tubes['rb-a'].peek(:ready).id)
  job.delete
end

check('bury, peek-buried, kick, kick-job') do
  tube = c.tubes['rb-a']
  ids = (0..2).map { |i| tube.put("b#{i}")[:id] }
  ids.each { c.tubes.reserve(1).bury(pri: 9) }
  assert_eq(ids[0], tube.peek(:buried).id)
  st = c.jobs.find(ids[0]).stats
  assert_eq(['buried', 9, 1], [st.state, st.pri, st.buries])
  assert_eq('2', tube.kick(2)[:id])
  buried = tube.peek(:buried)
  assert_eq(ids[2], buried.id)
  buried.kick
  assert_eq(1, buried.stats.kicks)
  expect_raises(Beaneater::NotFoundError) { buried.kick }
  assert_eq(nil, tube.peek(:buried)) # beaneater turns NOT_FOUND into nil
  ids.each { |i| c.jobs.find(i).delete }
end

check('stats and stats-tube parsed by beaneater (YAML); pause-tube') do
  st = c.stats
  raise st.pid.inspect unless st.pid.is_a?(Integer) && st.pid.positive?
  %w[version hostname os platform id].each do |k|
    v = st[k]
    raise "stats #{k}: #{v.inspect}" unless v.is_a?(String) && !v.empty?
  end
  tube = c.tubes['rb-a']
  tube.pause(2)
  ts = tube.stats
  assert_eq(['rb-a', 2], [ts.name, ts.pause])
  id = tube.put('while paused')[:id]
  expect_raises(Beaneater::TimedOutError) { c.tubes.reserve(0) }
  job = c.tubes.reserve(4) # the pause ends
  assert_eq(id, job.id)
  job.delete
end

check('binary body with every byte value') do
  body = ((0..255).map(&:chr).join * 4 + "\r\n\r\n").b
  id = c.tubes['rb-a'].put(body)[:id]
  job = c.tubes.reserve(1)
  assert_eq([id, body], [job.id, job.body.b])
  assert_eq(body, c.jobs.find(id).body.b)
  job.delete
end

check('a body of exactly -z bytes, and one byte more') do
  body = 'z' * MAX
  id = c.tubes['rb-a'].put(body)[:id]
  assert_eq(body, c.tubes.reserve(1).body)
  c.jobs.find(id).delete
  expect_raises(Beaneater::JobTooBigError) { c.tubes['rb-a'].put(body + 'z') }
  c.jobs.find(c.tubes['rb-a'].put('after')[:id]).delete
end

check('errors: bad tube name, deadline soon, unknown job') do
  expect_raises(Beaneater::InvalidTubeName) { c.tubes.watch('no spaces allowed') }
  expect_raises(Beaneater::NotFoundError) { c.tubes['never-made'].stats }
  id = c.tubes['rb-a'].put('short', ttr: 1)[:id]
  c.tubes.reserve(1)
  expect_raises(Beaneater::DeadlineSoonError) { c.tubes.reserve(1) }
  c.jobs.find(id).delete
end

check('a blocked reserve is woken by a put from another connection') do
  w = Beaneater.new(ADDR)
  w.tubes.watch!('rb-wake')
  got = nil
  t = Thread.new { got = w.tubes.reserve(5) }
  sleep 0.3
  p = Beaneater.new(ADDR)
  id = p.tubes['rb-wake'].put('wake up')[:id]
  t.join(5)
  assert_eq(id, got&.id)
  got.delete
  w.close
  p.close
end

check('a reserved job is released when its connection closes') do
  w = Beaneater.new(ADDR)
  w.tubes.watch!('rb-close')
  id = c.tubes['rb-close'].put('held')[:id]
  assert_eq(id, w.tubes.reserve(1).id)
  assert_eq('reserved', c.jobs.find(id).stats.state)
  w.close
  eventually { c.jobs.find(id).stats.state == 'ready' }
  c.jobs.find(id).delete
end

c.close
exit($failed.zero? ? 0 : 1)
