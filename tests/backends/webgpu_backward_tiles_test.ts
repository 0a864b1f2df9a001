import { assert, assertEquals } from "@std/assert";
import {
  alibi,
  attention,
  causal,
  compose,
  mask,
  scoreModGradient,
  softcap,
  tensorDesc,
} from "../../core/mod.ts";
import { backwardTile } from "../../backends/webgpu/_backward.ts";
import { blockGeometry } from "../../backends/webgpu/kernels/_backward_geometry.ts";
import { backwardTileWgsl } from "../../backends/webgpu/kernels/backward_wgsl.ts";
import { gpu } from "../_webgpu.ts";

const H100 = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024 };
const LLVMPIPE = { ...H100, maxComputeWorkgroupStorageSize: 32768 };
const DIMS = [1, 3, 24, 72, 128, 256];

Deno.test("backward tiles: 64 rows on 48 KiB of workgroup memory up to head dim 256, 32 on 32 KiB", () => {
  for (const dim of DIMS) {
    assertEquals(backwardTile(H100 as GPUSupportedLimits, dim, dim), 64, `D${dim}`);
    assertEquals(backwardTile(LLVMPIPE as GPUSupportedLimits, dim, dim), 32, `D${dim}`);
    // WebGPU's default 256 invocations: the `kv` pass's 512 at tile 64 do not fit.
    const small = { ...H100, maxComputeInvocationsPerWorkgroup: 256 } as GPUSupportedLimits;
    assertEquals(backwardTile(small, dim, dim), 32, `D${dim} at 256 invocations`);
  }
  // D128 on an H100: the workgroup array is exactly full (P and dS, 16 rows of Q and dO).
  const kv = blockGeometry({ mode: "kv", tile: 64, headDim: 128, valueDim: 128 }, 49152)!;
  assertEquals([kv.slots * 16, kv.threads, kv.rc, kv.itemsA, kv.itemsB], [49152, 512, 16, 2, 2]);
  // The `q` pass reads its walked tile's K in one 64-row chunk.
  const q = blockGeometry({ mode: "q", tile: 64, headDim: 128, valueDim: 128 }, 49152)!;
  assertEquals([q.slots * 16, q.threads, q.rc, q.itemsA, q.itemsB], [49152, 256, 64, 4, 8]);
});

Deno.test("backward block geometry fits the limit and bounds the prefetch, for every dim", () => {
  for (const limit of [49152, 32768, 16384]) {
    for (const tile of [16, 32, 64]) {
      for (const mode of ["kv", "q"] as const) {
        for (const headDim of DIMS) {
          for (const valueDim of [1, 24, 128]) {
            const g = blockGeometry({ mode, tile, headDim, valueDim }, limit);
            if (!g) continue;
            const at = `${mode} ${tile} D${headDim}/${valueDim} limit ${limit}`;
            assert(16 * g.slots <= limit, at);
            assertEquals(tile % g.rc, 0, at);
            assert(g.itemsB <= 8 || g.rc === 1, at);
            assert(4 * g.d4p >= headDim && 4 * g.v4p >= valueDim, at);
          }
        }
      }
    }
  }
});

Deno.test({
  name:
    "backward hardware kernels compile (naga) for odd dims, f16, vec loads, masks, modifiers and head-parameter gradients",
  ignore: gpu === undefined,
  fn: async () => {
    const x = tensorDesc([1, 4, 8, 8]);
    const spec = compose(mask(causal()), alibi([0.5, 0.25, 0.125, 0.0625]), softcap(20))(
      attention(x, x, x),
    );
    const modifiers = {
      mask: spec.mask,
      scoreMod: spec.scoreMod,
      gradient: scoreModGradient(spec.scoreMod!, "webgpu"),
    };
    const device = gpu!.device;
    const sources: string[] = [];
    for (const tile of [16, 32, 64]) {
      for (const [headDim, valueDim] of [[3, 1], [24, 72], [128, 128]]) {
        const vec = headDim % 4 === 0 && valueDim % 4 === 0;
        for (const mode of ["kv", "q"] as const) {
          for (const dtype of ["f32", "f16"] as const) {
            const shape = { mode, tile, headDim, valueDim, dtype, workgroupBytes: 49152 };
            sources.push(backwardTileWgsl({ ...shape, vec, ...modifiers }));
            if (vec) sources.push(backwardTileWgsl({ ...shape, vec: false }));
          }
        }
      }
    }
    for (const code of sources) {
      const info = await device.createShaderModule({ code }).getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === "error").map((m) => m.message);
      assertEquals(errors, []);
    }
  },
});
