// Loaded with --import into each test file's process by scripts/test.mjs. Node 20's runner reads a test
// file's process that exits 0 as a file that passed: a process.exit(0) in a test (or in code it runs)
// ends the file there, its later tests neither run nor count, and the run passes. Here such an exit
// fails the file, saying so. The runner's own exit (--test-force-exit) comes after the root test's
// `after` hooks, so it is told apart. Processes the tests start are left alone (see below).
// What it cannot see: with --test-force-exit, Node 20 ends a file once its root test has no test left
// to run, so tests registered after a top-level await in a test file are never run nor counted, the
// same silent way (no test file here has a top-level await).
// NODE_TEST_CONTEXT marks a test file's process (the runner's own has none). A process a test file starts
// inherits it, and fork() passes on --import too: a forked child that exits 0 (a worker script's
// process.exit) was failed here. So the guarded process marks its environment, and a process that
// inherits the mark (a child of a test file) is left alone; scripts/test.mjs clears it for the run it starts.
if (process.env.NODE_TEST_CONTEXT && process.env.TRIBUTARY_TEST_EXIT_GUARD === undefined) {
  process.env.TRIBUTARY_TEST_EXIT_GUARD = String(process.pid);
  const { after } = await import('node:test');
  let testsEnded = false;
  after(() => {
    testsEnded = true;
  });
  process.on('exit', (code) => {
    if (testsEnded || code !== 0) return;
    process.stderr.write(`${process.argv[1]}: its process exited (code 0) before its tests ended (process.exit in a test, or in code it runs?): the tests after that point did not run\n`);
    process.exitCode = 1;
  });
}
