/**
 * Reads from the device: the bytes several tensors address are copied into one staging buffer
 * in one submit, mapped once, and each is copied out of the mapped range once (f16 widened in
 * the same pass, contiguous views a cache-sized range at a time, strided views by whole
 * contiguous runs). Staging buffers are reused.
 * @module
 */
import { extent, type TensorDesc } from "../../core/tensor_desc.ts";
import { gatherStrided, mergedDims } from "../_strided.ts";
import { bufferSize } from "./_buffer_pool.ts";

// GPUBufferUsage MAP_READ | COPY_DST and GPUMapMode.READ, as numbers so importing works without
// WebGPU.
const STAGING_USAGE = 0x01 | 0x08;
const MAP_READ = 0x01;

/** Idle staging buffers kept for reuse, at most. */
const MAX_IDLE = 4;
/** Idle staging bytes kept for reuse, at most (one 64 MiB read back fits with room to spare). */
const MAX_IDLE_BYTES = 256 * 2 ** 20;

/**
 * Mappable staging buffers, reused across reads. A buffer is handed to one read at a time, so
 * reads in flight together never share one.
 */
export class StagingPool {
  #device: GPUDevice;
  #idle: GPUBuffer[] = [];
  #idleBytes = 0;

  /** @param device The device. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** Bytes held idle for reuse. */
  get idleBytes(): number {
    return this.#idleBytes;
  }

  /** A staging buffer of at least `bytes` bytes (the smallest idle one that fits, or new). */
  acquire(bytes: number): GPUBuffer {
    let best = -1;
    this.#idle.forEach((b, i) => {
      if (b.size >= bytes && (best < 0 || b.size < this.#idle[best].size)) best = i;
    });
    if (best >= 0) {
      const [buffer] = this.#idle.splice(best, 1);
      this.#idleBytes -= buffer.size;
      return buffer;
    }
    const size = bufferSize(bytes, this.#device.limits.maxBufferSize, "staging");
    return this.#device.createBuffer({ size, usage: STAGING_USAGE, label: "staging" });
  }

  /** Keeps an unmapped buffer for reuse, or destroys it when the pool is full. */
  release(buffer: GPUBuffer): void {
    if (this.#idle.length >= MAX_IDLE || this.#idleBytes + buffer.size > MAX_IDLE_BYTES) {
      buffer.destroy();
      return;
    }
    this.#idle.push(buffer);
    this.#idleBytes += buffer.size;
  }

  /** Destroys idle buffers. */
  trim(): void {
    for (const buffer of this.#idle) buffer.destroy();
    this.#idle = [];
    this.#idleBytes = 0;
  }
}

/** One tensor to read: its view, the buffer behind it and where its elements go. */
export interface ReadRequest {
  /** The view read. */
  readonly desc: TensorDesc;
  /** The buffer holding the view's storage. */
  readonly buffer: GPUBuffer;
  /** Receives the view's elements in row-major order. */
  readonly target: Float32Array;
}

interface Slot {
  readonly request: ReadRequest;
  /** First byte copied from the source (a multiple of 4). */
  readonly from: number;
  /** Bytes copied (a multiple of 4). */
  readonly bytes: number;
  /** Where they land in the staging buffer (a multiple of 8). */
  readonly at: number;
}

const elementBytes = (desc: TensorDesc) => desc.dtype === "f16" ? 2 : 4;

/** Byte ranges of requests packed into batches that each fit one staging buffer. */
function packSlots(requests: readonly ReadRequest[], maxBytes: number): Slot[][] {
  const batches: Slot[][] = [];
  let batch: Slot[] = [], used = 0;
  for (const request of requests) {
    const size = elementBytes(request.desc);
    const end = extent(request.desc) * size;
    if (end === 0) continue;
    const from = Math.floor((request.desc.offset * size) / 4) * 4;
    const bytes = Math.min(Math.ceil(end / 4) * 4, request.buffer.size) - from;
    if (batch.length && used + bytes > maxBytes) {
      batches.push(batch);
      batch = [], used = 0;
    }
    batch.push({ request, from, bytes, at: used });
    used += Math.ceil(bytes / 8) * 8;
  }
  if (batch.length) batches.push(batch);
  return batches;
}

/**
 * Bytes per `getMappedRange` call when copying a contiguous view out. Deno copies a mapped range
 * into a new ArrayBuffer, so ranges that stay in cache halve the cost of one large range
 * (bench/RESULTS.md).
 */
const CHUNK_BYTES = 2 ** 20;

/** Copies a contiguous view out of the mapped staging buffer a cache-sized range at a time. */
function copyContiguous(buffer: GPUBuffer, slot: Slot): void {
  const { request, from, bytes, at } = slot;
  const size = elementBytes(request.desc);
  const first = request.desc.offset, end = first + request.target.length;
  for (let start = at; start < at + bytes; start += CHUNK_BYTES) {
    const length = Math.min(CHUNK_BYTES, at + bytes - start);
    const range = buffer.getMappedRange(start, length);
    const chunk = size === 2 ? new Float16Array(range) : new Float32Array(range);
    const base = (from + start - at) / size; // address of chunk[0]
    const lo = Math.max(first, base), hi = Math.min(end, base + chunk.length);
    if (lo < hi) {
      const run = { dtype: request.desc.dtype, shape: [hi - lo], strides: [1], offset: lo };
      gatherStrided(chunk, run, request.target.subarray(lo - first, hi - first), base);
    }
  }
}

/** Copies any view out of the mapped staging buffer, gathering contiguous runs. */
function copyStrided(buffer: GPUBuffer, slot: Slot): void {
  const { request, from, bytes, at } = slot;
  const size = elementBytes(request.desc);
  const range = buffer.getMappedRange(at, bytes);
  const view = size === 2 ? new Float16Array(range) : new Float32Array(range);
  gatherStrided(view, request.desc, request.target, from / size);
}

/** Whether a view's elements are one run of consecutive addresses. */
function isOneRun(desc: TensorDesc): boolean {
  const { strides } = mergedDims(desc);
  return strides.length === 0 || (strides.length === 1 && strides[0] === 1);
}

async function readBatch(device: GPUDevice, staging: StagingPool, slots: Slot[]): Promise<void> {
  const last = slots[slots.length - 1];
  const total = last.at + Math.ceil(last.bytes / 8) * 8;
  const buffer = staging.acquire(total);
  let mapped = false;
  try {
    const encoder = device.createCommandEncoder({ label: "read" });
    for (const s of slots) {
      encoder.copyBufferToBuffer(s.request.buffer, s.from, buffer, s.at, s.bytes);
    }
    device.queue.submit([encoder.finish()]);
    await buffer.mapAsync(MAP_READ, 0, total);
    mapped = true;
    for (const slot of slots) {
      if (isOneRun(slot.request.desc)) copyContiguous(buffer, slot);
      else copyStrided(buffer, slot);
    }
  } finally {
    if (mapped) buffer.unmap();
    staging.release(buffer);
  }
}

/**
 * Copies each request's view into its target: one submit and one mapping per staging buffer
 * (all requests share one unless together they pass the device's largest buffer).
 */
export async function readBack(
  device: GPUDevice,
  staging: StagingPool,
  requests: readonly ReadRequest[],
): Promise<void> {
  const batches = packSlots(requests, device.limits.maxBufferSize);
  for (const slots of batches) await readBatch(device, staging, slots);
}
