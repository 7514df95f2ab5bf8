// Build history (buildx's `history ls/inspect/logs/rm`) over the build records the frontend
// keeps and the builds' event streams. Every answer is the calling tenant's own: records of
// other tenants are neither listed, matched by a ref, nor removed, and a ref that names one
// answers NOT_FOUND as a ref that names nothing.
import { status } from '@grpc/grpc-js';
import type { RedisClient as Redis } from '@buildyard/contracts';
import { z } from 'zod';
import { buildRecordFromHash, jsonFromRedis, type BuildRecord, type BuildRecords, type RedisKeys } from '@buildyard/contracts';
import { decodeEvent, EVENT_FIELD, progressStreamKey } from '@buildyard/progress';
import { isBaseImageVertex } from './baseImageVertices.js';
import { DeleteHistoryResponse, HistoryRecord, ListHistoryResponse, type DeleteHistoryRequest, type ImageResult, type ListHistoryRequest } from '@buildyard/proto';
import { serviceError } from './authenticate.js';
import { internalBuildId, releaseBuildId, shownBuildId } from './buildIds.js';

/** buildx's recordsLimit: what `history ls` shows unless asked for more. */
const DEFAULT_LIMIT = 50;
/** Build ids of a tenant read per round trip. */
const PAGE = 500;
/** Stream entries read per XRANGE while summing up a build's steps. */
const STREAM_PAGE = 1000;
const MAX_REF_SHOWN = 100;

const finished = (r: BuildRecord) => r.status !== 'queued' && r.status !== 'running';

export interface StepSummary {
  total: number;
  completed: number;
  cached: number;
  images: ImageResult[];
  /** The first step that failed. */
  errorStep: string;
  /** Whether the build's event stream is still kept. */
  kept: boolean;
  /** The platforms it built (the builder's own when the request named none). */
  platforms: string[];
}

const stepSummarySchema = z.object({
  total: z.number(), completed: z.number(), cached: z.number(), errorStep: z.string(), kept: z.boolean(), platforms: z.array(z.string()),
  images: z.array(z.object({ platform: z.string(), manifestDigest: z.string(), configDigest: z.string() })),
});

export class BuildHistory {
  constructor(private readonly redis: Redis, private readonly keys: RedisKeys, private readonly records: BuildRecords) {}

  /** The tenant's records, newest first, from its own list a page at a time. */
  private async *tenantRecords(tenant: string): AsyncGenerator<BuildRecord> {
    for (let start = 0; ; start += PAGE) {
      const ids = await this.records.tenantIdsNewestFirst(tenant, start, PAGE);
      const hashes = await this.records.hashes(ids);
      // The tenant is compared before parsing: the list is an index, the record says whose build it is.
      for (const h of hashes) if (h.buildId && h.tenant === tenant) yield buildRecordFromHash(h);
      if (ids.length < PAGE) return;
    }
  }

  /**
   * The records a ref names for `tenant`: a build id (exact), `^N` (the Nth latest, ^0 the
   * latest, as buildx), or a unique prefix of an id. Throws NOT_FOUND or INVALID_ARGUMENT in one line.
   */
  async resolve(tenant: string, ref: string, completedOnly = false): Promise<BuildRecord> {
    const shown = ref.slice(0, MAX_REF_SHOWN);
    const offset = /^\^(.*)$/.exec(ref)?.[1];
    if (offset !== undefined) {
      if (!/^\d{1,6}$/.test(offset)) throw serviceError(status.INVALID_ARGUMENT, `invalid history ref "${shown}": ^N takes a number (^0 is the latest build, ^1 the one before)`);
      let n = Number(offset);
      for await (const r of this.tenantRecords(tenant)) {
        if (completedOnly && !finished(r)) continue;
        if (n-- === 0) return r;
      }
      throw serviceError(status.NOT_FOUND, `no build found at offset ^${offset}: there are fewer builds in the history (see buildyard history ls)`);
    }
    const exact = await this.records.get(await internalBuildId(this.redis, this.keys, tenant, ref));
    if (exact?.tenant === tenant && (!completedOnly || finished(exact))) return exact;
    const matches: BuildRecord[] = [];
    if (ref) {
      for await (const r of this.tenantRecords(tenant)) {
        if (shownBuildId(r.buildId).startsWith(ref) && (!completedOnly || finished(r))) matches.push(r);
        if (matches.length > 3) break;
      }
    }
    if (matches.length === 1) return matches[0];
    if (matches.length > 1) {
      throw serviceError(status.INVALID_ARGUMENT, `history ref "${shown}" matches several builds (${matches.slice(0, 3).map((r) => shownBuildId(r.buildId)).join(', ')}${matches.length > 3 ? ', ...' : ''}): give more of the id`);
    }
    throw serviceError(status.NOT_FOUND, `no build found for ref "${shown}": see buildyard history ls for the ids kept`);
  }

  /** Control.ListHistory: one record for a ref, else the newest up to the limit. */
  async list(tenant: string, req: ListHistoryRequest): Promise<ListHistoryResponse> {
    let chosen: BuildRecord[];
    if (req.ref) chosen = [await this.resolve(tenant, req.ref, req.completedOnly)];
    else {
      chosen = [];
      const limit = req.limit > 0 ? req.limit : DEFAULT_LIMIT;
      for await (const r of this.tenantRecords(tenant)) {
        if (req.completedOnly && !finished(r)) continue;
        chosen.push(r);
        if (chosen.length >= limit) break;
      }
    }
    const records = await Promise.all(chosen.map(async (r) => this.toHistoryRecord(r, req.details ? await this.steps(r.buildId) : await this.listedSteps(r))));
    return ListHistoryResponse.fromPartial({ records, nowMs: Date.now() });
  }

  /**
   * Control.DeleteHistory: removes finished builds' records, event streams and name claims.
   * Every ref is resolved before anything is removed, so a bad ref removes nothing.
   */
  async remove(tenant: string, req: DeleteHistoryRequest): Promise<DeleteHistoryResponse> {
    const chosen = new Map<string, BuildRecord>();
    if (req.all) for await (const r of this.tenantRecords(tenant)) if (finished(r)) chosen.set(r.buildId, r);
    for (const ref of req.refs) {
      const r = await this.resolve(tenant, ref);
      if (!finished(r)) throw serviceError(status.FAILED_PRECONDITION, `build ${shownBuildId(r.buildId)} is still ${r.status}: wait for it to finish or cancel it, then remove it`);
      chosen.set(r.buildId, r);
    }
    const ids = [...chosen.keys()];
    await this.records.remove(ids);
    // One key per DEL: on a Redis Cluster the streams and summaries of builds are in other slots.
    await Promise.all(ids.flatMap((id) => [progressStreamKey(id, this.keys), this.summaryKey(id)]).map((key) => this.redis.del(key)));
    for (const id of ids) await releaseBuildId(this.redis, this.keys, tenant, id);
    return DeleteHistoryResponse.fromPartial({ deleted: ids.map(shownBuildId) });
  }

  /** Where a finished build's step summary is kept once ls has read it from the events. */
  private summaryKey(buildId: string): string {
    return `${this.keys.build(buildId)}:steps`;
  }

  /**
   * The steps ls shows. A successful build's record has its counts; a failed or cancelled one's
   * are read from its events once, then kept beside its record (as long as the record); a
   * running one's are read each time (a tenant has few of those running).
   */
  private async listedSteps(r: BuildRecord): Promise<StepSummary | undefined> {
    if (r.status === 'succeeded') return undefined;
    const key = this.summaryKey(r.buildId);
    if (finished(r)) {
      const kept = await this.redis.get(key);
      if (kept) return jsonFromRedis(stepSummarySchema, kept, `the step summary of build ${r.buildId}`);
    }
    const summary = await this.steps(r.buildId);
    if (finished(r) && summary.kept) {
      const ttl = await this.redis.pttl(this.keys.build(r.buildId));
      if (ttl > 0) await this.redis.set(key, JSON.stringify(summary), 'PX', ttl);
    }
    return summary;
  }

  /** Sums up a build's steps from its event stream (every step's last state), with its images and first failed step. */
  async steps(buildId: string): Promise<StepSummary> {
    const key = progressStreamKey(buildId, this.keys);
    const state = new Map<string, 'running' | 'done' | 'cached' | 'failed'>();
    const out: StepSummary = { total: 0, completed: 0, cached: 0, images: [], errorStep: '', kept: false, platforms: [] };
    let from = '-';
    for (;;) {
      const entries = (await this.redis.xrange(key, from, '+', 'COUNT', STREAM_PAGE)) as [string, string[]][];
      if (entries.length > 0) out.kept = true;
      for (const [, fields] of entries) {
        for (let i = 0; i + 1 < fields.length; i += 2) {
          if (fields[i] !== EVENT_FIELD) continue;
          const e = decodeEvent(fields[i + 1]);
          if (e.type === 'build.accepted') out.platforms = e.platforms;
          // Planning's base-image loads and FROM steps are no steps of the build (as the endpoint's other "[internal]" vertices, not in the stream).
          else if ('vertex' in e && typeof e.vertex === 'object' && (e.vertex.name.startsWith('[internal] ') || isBaseImageVertex(e.vertex))) continue;
          else if (e.type === 'vertex.started' && !state.has(e.vertex.digest)) state.set(e.vertex.digest, 'running');
          else if (e.type === 'vertex.cached') state.set(e.vertex.digest, 'cached');
          else if (e.type === 'vertex.finished') state.set(e.vertex.digest, 'done');
          else if (e.type === 'vertex.error') {
            state.set(e.vertex.digest, 'failed');
            out.errorStep ||= e.vertex.name;
          } else if (e.type === 'build.result') out.images = e.images.map((img) => ({ ...img }));
        }
      }
      if (entries.length < STREAM_PAGE) break;
      from = `(${entries[entries.length - 1][0]}`;
    }
    out.total = state.size;
    for (const s of state.values()) {
      if (s !== 'running') out.completed++;
      if (s === 'cached') out.cached++;
    }
    return out;
  }

  private toHistoryRecord(r: BuildRecord, steps: StepSummary | undefined): HistoryRecord {
    // Without the stream: a successful build's counts are in its record, every step completed.
    const total = steps?.total ?? r.verticesTotal;
    return HistoryRecord.fromPartial({
      buildId: shownBuildId(r.buildId), status: r.status, platforms: r.platforms.length > 0 ? r.platforms : steps?.platforms ?? [], createdMs: r.createdMs, finishedMs: r.finishedMs,
      digest: r.digest, error: r.error, pushed: r.pushed,
      stepsTotal: total, stepsCompleted: steps?.completed ?? (r.status === 'succeeded' ? total : 0), stepsCached: steps?.cached ?? r.verticesCached,
      context: r.context, dockerfile: r.dockerfile, target: r.target, buildArgs: r.buildArgs, noCache: r.noCache, network: r.network,
      images: steps?.images ?? [], errorStep: steps?.errorStep ?? '', logsKept: steps?.kept ?? false,
    });
  }
}
