// What a finished stage hands on crosses Redis (scheduler stage results), so its type and
// schema live in @buildyard/contracts.
export type { StageResult } from '@buildyard/contracts';
