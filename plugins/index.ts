/** The built-in plugins: a plugin module like any user's, loaded by the CLI before the pipeline's own. */
import fileSource from './sources/file.js';
import stdinSource from './sources/stdin.js';
import syntheticSource from './sources/synthetic.js';
import fileSink from './sinks/file.js';
import stdoutSink from './sinks/stdout.js';

export default [fileSource, stdinSource, syntheticSource, fileSink, stdoutSink];
