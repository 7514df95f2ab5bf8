// `buildyard up` / `buildyard down` (a local cluster) are registered here; the lead writes them.
import type { Command } from 'commander';

export function registerUpCommands(_program: Command): void {
  // Intentionally empty until the local-cluster commands land.
}
