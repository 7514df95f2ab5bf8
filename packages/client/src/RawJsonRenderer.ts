// `--progress rawjson`: loaded by createRenderer for that mode only.
import type { SolveEvent } from '@buildyard/proto';
import { StatusTranslator, fromSolveEvent, solveStatusJson, warningUpdate } from '@buildyard/progress';
import { BuildProgress } from './BuildProgress.js';
import type { ProgressRenderer } from './ProgressRenderer.js';

/**
 * BuildKit's SolveStatus JSON, one object per status update, as `buildctl --progress rawjson`
 * prints it: the events go through the translation the BuildKit endpoint gives buildctl, so
 * tooling that reads buildctl's stream reads this one. Events with no SolveStatus form (the
 * build's acceptance, result, exported files) print nothing, as in BuildKit.
 */
export class RawJsonRenderer implements ProgressRenderer {
  readonly progress = new BuildProgress();
  readonly human = false;
  private translator?: StatusTranslator;
  constructor(private readonly write: (line: string) => void) {}
  event(ev: SolveEvent): void {
    this.progress.apply(ev);
    const e = fromSolveEvent(ev);
    if (!e) return;
    // Step names carry their platform when several build, as BuildKit names them.
    if (e.type === 'build.accepted') this.translator ??= new StatusTranslator(e.platforms.length > 1);
    this.translator ??= new StatusTranslator(false);
    const update = this.translator.translate(e) ?? warningUpdate(e);
    if (update) this.write(solveStatusJson(update));
  }
  end(): void {}
}
