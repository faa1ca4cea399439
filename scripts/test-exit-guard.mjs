// Loaded with --import into each test file's process by scripts/test.mjs. It ends a test file's process
// the way its tests did, on two counts:
// - Exited too early. Node 20's runner reads a test file's process that exits 0 as a file that passed: a
//   process.exit(0) in a test (or in code it runs) ends the file there, its later tests neither run nor
//   count, and the run passes. Here such an exit fails the file, saying so.
// - Left running. A file whose tests leave a handle open (a consumer, a socket, a test that timed out
//   holding one) would never exit and would hang the run. It is ended `lingerMs` after its tests, naming
//   what holds it. Not node's --test-force-exit: that exits as soon as the reporter's stream is unpiped,
//   with the stdout pipe to the runner maybe still holding the file's last verdicts, and those passed tests
//   then silently count as nothing (seen: mapping.test's last 6 of 39 missing from a passing CI run).
// NODE_TEST_CONTEXT marks a test file's process (the runner's own has none). A process a test file starts
// inherits it, and fork() passes on --import too: a forked child that exits 0 (a worker script's
// process.exit) was failed here. So the guarded process marks its environment, and a process that
// inherits the mark (a child of a test file) is left alone; scripts/test.mjs clears it for the run it starts.
if (process.env.NODE_TEST_CONTEXT && process.env.TRIBUTARY_TEST_EXIT_GUARD === undefined) {
  process.env.TRIBUTARY_TEST_EXIT_GUARD = String(process.pid);
  // The root's `after` hooks run in the order registered, this one first: the file's own (stopping what its
  // tests started) run in this time too, so it is generous; a file that ends cleanly does not wait for it.
  const lingerMs = Number(process.env.TRIBUTARY_TEST_LINGER_MS ?? 30_000);
  const { after } = await import('node:test');
  let testsEnded = false;
  after(() => {
    testsEnded = true;
    setTimeout(() => {
      const holding = process.getActiveResourcesInfo().filter((kind) => kind !== 'TTYWrap');
      process.stderr.write(`${process.argv[1]}: still running ${lingerMs / 1000} s after its tests ended (open: ${holding.join(', ')}); ended\n`);
      process.exit();
    }, lingerMs).unref();
  });
  process.on('exit', (code) => {
    if (testsEnded || code !== 0) return;
    process.stderr.write(`${process.argv[1]}: its process exited (code 0) before its tests ended (process.exit in a test, or in code it runs?): the tests after that point did not run\n`);
    process.exitCode = 1;
  });
}
