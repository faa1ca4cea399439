/**
 * Tributary's public API: what a plugin (built-in or a user's) and an embedding program may use.
 * Built-in plugins import only from here (as `tributary`).
 */
export * from './events.js';
export * from './plugin.js';
export { composeOperators, recordOperator, type Emit, type RecordHandlers, type RecordOperator, type StageTimer } from './operators.js';
export { absentFieldCheck, CANONICAL_EVENT_MAPPING, createEventMapper, unknownEventTypeWarning, createTimeParser, isRejected, isSkipped, mappingOf, rejectionOf, timeFormatReadsInstants, type EventMapper, type MapRejection, type MapResult, type MappingConfig, type MappingSetting, type TimeParser } from './mapping.js';
export { canonicalTimeZone, isUtcZone, offsetText, onTimeOffset, timeOffsetReporter, timeZoneProblem, utcToLocal, zoneNameWarning, type TimeOffsetListener, type UtcToLocal } from './time-zone.js';
export { parseDuration, formatDuration, durationText, bareMillisecondsWarning, timerDurationMax, type Duration } from './duration.js';
export { recordToJson, recordToJsonBytes } from './json.js';
export {
  // Internal (for the built-in file sink, which imports only from here): not in docs/plugin-authoring.md.
  countNewlines,
  notUtf8Rejection,
  readLineBatches,
  JsonLinesWriter,
  DEFAULT_MAX_RECORD_BYTES,
  OVERLONG_HEAD_BYTES,
  type LineBatch,
  type LineBatchOptions,
  type LineRest,
  type LineStop,
  type NotUtf8Line,
  type OverlongLine,
} from './io.js';
export {
  csvColumns,
  csvConfigProblems,
  decodeProperties,
  decodeRecords,
  formatOfFile,
  isTabSeparatedFile,
  type CsvConfig,
  type DecodeConfig,
  type DecodedBatch,
  type DecodeOptions,
  type RecordFormat,
  type StreamStart,
} from './decode.js';
export { gunzipUpToDamage, type GunzipUpToDamageOptions, type GzipDamage } from './gzip.js';
export { FeatureBlock, inFloat32Range } from './feature-block.js';
export { recentScoresText, type RecentScores } from './model-scores.js';
export { FeatureSelector } from './feature-selector.js';
export { fnv1a } from './hash.js';
export { fieldPath, fieldPathProblem, isInheritedName, ownValue, setOwnField, valueAtPath, type ElementTest, type FieldPath, type FieldStep } from './fields.js';
export { inputFileProblem, sameFile } from './paths.js';
export { createFileDurably, makeFolderDurably, makeFolderDurablySync, writeFileDurably, writeFileDurablySync, type DurableData } from './durable.js';
export { LockRefusedError, releaseLock, takeLock, takeLockWaiting, type LockHolder, type LockOptions } from './lock.js';
export { type CopyingSnapshot, type CopyThenEncode, eachOf, inParts, inTurns, isCopyingSnapshot, nextTurn, PartedSnapshots, partsOf, turnDue, TURN_MS } from './turns.js';
export { checkListLengths, decodeColumn, decodeColumnOf, decodeColumns, decodeDerivedIds, decodeNamedColumns, decodeNamedColumnsInTurns, decodeNullableStrings, decodeOptionalColumnOf, decodeStrings, decodeTable, encodeColumn, encodeColumns, encodeNamedColumns, encodeDerivedIds, encodeTable, type Column, type DerivedIds, type Reference } from './columns.js';
export { ConfigError, PluginConfigError, TributaryError, errorCatalogue, formatProblem, fileSystemErrorAt, formatWarning, inputHandedOver, lastsForProcess, needsPerson, unwritableOutput, writeAccessFix, type ConfigProblem, type ErrorCode } from './errors.js';
export { PluginRegistry } from './registry.js';
export { fieldText, loadPipeline, type FieldPlace, type FieldPosition, type LoadedPipeline, type LoadOptions, type PipelineDocument, type PipelineEntry } from './config/load.js';
export { composedSchema } from './config/schema.js';
export { PipelineRunner, type RunOptions, type RunStats } from './runtime/pipeline.js';
export { createLogger, isSecret, MetricsHub, redactSecrets, redactSecretText } from './runtime/telemetry.js';
export { CheckpointStore, checkpointMark, otherPipelineText, parseCheckpointMark, readCheckpoint, type Checkpoint, type CheckpointBody, type CheckpointCompression } from './runtime/checkpoint.js';
export { Daemon, type DaemonOptions, type DaemonResult } from './runtime/daemon.js';
