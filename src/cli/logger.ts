import { destination, pino } from 'pino';
import { RingLimitError } from '../common/errors.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What serve logs through: one line of JSON per event, with the node's id on each. */
export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export function parseLogLevel(value: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) throw new RingLimitError('INVALID_ARGUMENT', `--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`);
  return value as LogLevel;
}

/** A pino logger on stderr (stdout carries --ready-json). */
export function createLogger(level: LogLevel, nodeId: string): Logger {
  return pino({ level, base: { nodeId } }, destination(2));
}
