/**
 * Validation of the sync components' options (house rule: options validated at construction, messages saying
 * expected vs given). Plain values are checked with zod; the ConfigError lists every problem at once.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { describeIssues } from '../protocol/index.js';

export function validateOptions<T>(schema: z.ZodType<T>, given: unknown, source: string): T {
  const parsed = schema.safeParse(given);
  if (!parsed.success) throw new ConfigError(describeIssues(parsed.error), source);
  return parsed.data;
}

/** A positive duration in ms. */
export const Ms = z.number().int().positive();
