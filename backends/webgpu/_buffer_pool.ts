/**
 * A size-bucketed pool of storage buffers. Sizes round up to powers of two (from 256 bytes), a
 * released buffer waits in its bucket for reuse, and `stats()` reports the bytes in use now and
 * at peak so tests can prove that no `Nq × Nk` buffer was ever allocated.
 * @module
 */

/** Buffer pool counters. */
export interface PoolStats {
  /** Bytes of buffers handed out and not yet released. */
  readonly liveBytes: number;
  /** Highest `liveBytes` since creation or the last `resetPeak()`. */
  readonly peakBytes: number;
  /** Buffers created on the device (not reuses). */
  readonly allocations: number;
  /** Bytes held idle for reuse. */
  readonly idleBytes: number;
}

// GPUBufferUsage STORAGE | COPY_SRC | COPY_DST, as numbers so importing works without WebGPU.
const USAGE = 0x80 | 0x04 | 0x08;

/** Bucket size for a request: the next power of two, at least 256 bytes. */
export function bucketSize(bytes: number): number {
  return Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(1, bytes))));
}

/**
 * The size of buffer to create for `bytes` on a device whose largest buffer is `maxBytes`: the
 * bucket, or (where the bucket would pass the limit) the request rounded up to 256 bytes.
 * @throws {RangeError} If `bytes` itself is over the limit, naming the real size.
 */
export function bufferSize(bytes: number, maxBytes: number, label: string): number {
  if (bytes > maxBytes) {
    throw new RangeError(
      `Cannot allocate ${label}: size must be at most the device's maxBufferSize ${maxBytes} bytes, current value is ${bytes} bytes`,
    );
  }
  const bucket = bucketSize(bytes);
  return bucket <= maxBytes ? bucket : Math.min(maxBytes, Math.ceil(bytes / 256) * 256);
}

/** A pool of storage buffers on one device. */
export class BufferPool {
  #device: GPUDevice;
  #maxBytes: number;
  #idle = new Map<number, GPUBuffer[]>();
  #handedOut = new Set<GPUBuffer>();
  #live = 0;
  #peak = 0;
  #idleBytes = 0;
  #allocations = 0;

  /**
   * @param device The device.
   * @param maxBytes Largest buffer the device allows.
   */
  constructor(device: GPUDevice, maxBytes: number) {
    this.#device = device;
    this.#maxBytes = maxBytes;
  }

  /**
   * Takes a buffer of at least `bytes` bytes.
   * @throws {RangeError} If `bytes` exceeds the device's buffer size limit.
   */
  acquire(bytes: number, label: string): GPUBuffer {
    const size = bufferSize(bytes, this.#maxBytes, label);
    const reused = this.#idle.get(size)?.pop();
    if (reused) this.#idleBytes -= size;
    const buffer = reused ?? this.#create(size, label);
    this.#handedOut.add(buffer);
    this.#live += size;
    this.#peak = Math.max(this.#peak, this.#live);
    return buffer;
  }

  #create(size: number, label: string): GPUBuffer {
    this.#allocations++;
    return this.#device.createBuffer({ size, usage: USAGE, label });
  }

  /** Returns a buffer for reuse; a buffer this pool did not hand out is ignored. */
  release(buffer: GPUBuffer): void {
    if (!this.#handedOut.delete(buffer)) return;
    const size = buffer.size;
    this.#live -= size;
    this.#idleBytes += size;
    const list = this.#idle.get(size) ?? [];
    list.push(buffer);
    this.#idle.set(size, list);
  }

  /** Current counters. */
  stats(): PoolStats {
    return {
      liveBytes: this.#live,
      peakBytes: this.#peak,
      allocations: this.#allocations,
      idleBytes: this.#idleBytes,
    };
  }

  /** Restarts peak tracking from the current live bytes. */
  resetPeak(): void {
    this.#peak = this.#live;
  }

  /** Destroys idle buffers. */
  trim(): void {
    for (const list of this.#idle.values()) for (const b of list) b.destroy();
    this.#idle.clear();
    this.#idleBytes = 0;
  }

  /** Destroys every buffer, idle or handed out (the backend is going away). */
  destroy(): void {
    this.trim();
    for (const buffer of this.#handedOut) buffer.destroy();
    this.#handedOut.clear();
    this.#live = 0;
  }
}

// GPUBufferUsage UNIFORM | COPY_DST.
const UNIFORM_USAGE = 0x40 | 0x08;

/**
 * Uniform buffers reused across runs, keyed by size. A buffer goes back after its run's submit:
 * `queue.writeBuffer` is ordered after earlier submits, so the next run's data cannot reach work
 * already queued.
 */
export class UniformPool {
  #device: GPUDevice;
  #idle = new Map<number, GPUBuffer[]>();

  /** @param device The device. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** A uniform buffer holding `data`, written through the queue. */
  upload(data: ArrayBuffer): GPUBuffer {
    const size = Math.ceil(data.byteLength / 16) * 16;
    const buffer = this.#idle.get(size)?.pop() ??
      this.#device.createBuffer({ size, usage: UNIFORM_USAGE, label: "uniforms" });
    this.#device.queue.writeBuffer(buffer, 0, data);
    return buffer;
  }

  /** Returns buffers for reuse by later runs. */
  release(buffers: readonly GPUBuffer[]): void {
    for (const buffer of buffers) {
      const list = this.#idle.get(buffer.size) ?? [];
      list.push(buffer);
      this.#idle.set(buffer.size, list);
    }
  }

  /** Destroys idle buffers. */
  trim(): void {
    for (const list of this.#idle.values()) for (const b of list) b.destroy();
    this.#idle.clear();
  }
}
