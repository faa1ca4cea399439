/** The built-in plugins: a plugin module like any user's, loaded by the CLI before the pipeline's own. */
import fileSource from './sources/file.js';
import stdinSource from './sources/stdin.js';
import syntheticSource from './sources/synthetic.js';
import fileSink from './sinks/file.js';
import stdoutSink from './sinks/stdout.js';
import dedupe from './operators/dedupe.js';
import sessionizer from './operators/sessionizer.js';
import sessionFeatures from './operators/session-features.js';
import userFeatures from './operators/user-features.js';
import hashFeatures from './operators/hash-features.js';
import standardize from './operators/standardize.js';
import log1p from './operators/log1p.js';
import clip from './operators/clip.js';
import intentModel from './models/intent.js';
import churnModel from './models/churn.js';
import kafkaSource from './kafka/source.js';
import kafkaSink from './kafka/sink.js';

export default [fileSource, stdinSource, syntheticSource, fileSink, stdoutSink, dedupe, sessionizer, sessionFeatures, userFeatures, hashFeatures, standardize, log1p, clip, intentModel, churnModel, kafkaSource, kafkaSink];
