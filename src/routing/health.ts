/**
 * Per-endpoint performance, for `provider.sort: latency | throughput`: exponentially weighted
 * moving averages of the time to first byte and of the output speed. Pure: samples come from
 * the relay, nothing is measured here.
 */

export interface HealthSample {
  /** From sending the request to the upstream's first byte (non-streamed: its response headers), ms. */
  ttfbMs: number;
  /** From sending the request to the end of the response, ms. */
  durationMs: number;
  /** Completion tokens of the response (reported or estimated). */
  completionTokens: number;
}

export interface HealthStats {
  /** Average time to first byte, ms; undefined before the first sample. */
  latencyMs: number | undefined;
  /** Average output speed, tokens per second; undefined before the first sample with output. */
  throughput: number | undefined;
  /** Samples recorded. */
  samples: number;
}

export interface HealthOptions {
  /** Weight of a new sample in each average (0 < alpha ≤ 1). Default 0.3. */
  alpha: number;
  /**
   * Throughput is tokens over the time after the first byte when that lasted at least this
   * long (a stream); over the whole duration otherwise (a non-streamed answer, which arrives in
   * one piece). Default 100 ms.
   */
  minGenerationMs: number;
}

export const DEFAULT_HEALTH_OPTIONS: Readonly<HealthOptions> = Object.freeze({ alpha: 0.3, minGenerationMs: 100 });

export class EndpointHealth {
  readonly options: Readonly<HealthOptions>;
  #latency: number | undefined;
  #throughput: number | undefined;
  #samples = 0;

  constructor(options: Partial<HealthOptions> = {}) {
    this.options = { ...DEFAULT_HEALTH_OPTIONS, ...options };
    const a = this.options.alpha;
    if (!(a > 0 && a <= 1)) throw new RangeError(`alpha must be in (0, 1], got ${String(a)}`);
  }

  /** Adds one successful response. Values that are not finite or negative are ignored. */
  record(sample: HealthSample): void {
    const { ttfbMs, durationMs, completionTokens } = sample;
    const a = this.options.alpha;
    let used = false;
    if (Number.isFinite(ttfbMs) && ttfbMs >= 0) {
      this.#latency = this.#latency === undefined ? ttfbMs : this.#latency + a * (ttfbMs - this.#latency);
      used = true;
    }
    if (Number.isFinite(durationMs) && Number.isFinite(completionTokens) && completionTokens > 0 && durationMs > 0) {
      const generation = Number.isFinite(ttfbMs) && ttfbMs >= 0 ? durationMs - ttfbMs : 0;
      const seconds = (generation >= this.options.minGenerationMs ? generation : durationMs) / 1000;
      const tps = completionTokens / seconds;
      this.#throughput = this.#throughput === undefined ? tps : this.#throughput + a * (tps - this.#throughput);
      used = true;
    }
    if (used) this.#samples++;
  }

  get latencyMs(): number | undefined {
    return this.#latency;
  }

  get throughput(): number | undefined {
    return this.#throughput;
  }

  get samples(): number {
    return this.#samples;
  }

  stats(): HealthStats {
    return { latencyMs: this.#latency, throughput: this.#throughput, samples: this.#samples };
  }
}

/** The health of all endpoints by key (`EndpointRoute.key`), created on first record. */
export class HealthRegistry {
  readonly #endpoints = new Map<string, EndpointHealth>();
  readonly options: Partial<HealthOptions>;

  constructor(options: Partial<HealthOptions> = {}) {
    this.options = options;
  }

  get(key: string): EndpointHealth {
    let h = this.#endpoints.get(key);
    if (!h) {
      h = new EndpointHealth(this.options);
      this.#endpoints.set(key, h);
    }
    return h;
  }

  record(key: string, sample: HealthSample): void {
    this.get(key).record(sample);
  }

  stats(key: string): HealthStats {
    return this.#endpoints.get(key)?.stats() ?? { latencyMs: undefined, throughput: undefined, samples: 0 };
  }

  entries(): IterableIterator<[string, EndpointHealth]> {
    return this.#endpoints.entries();
  }
}
