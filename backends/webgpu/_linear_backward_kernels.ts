/**
 * The backward pipelines of a linear plan (see `kernels/linear_backward_wgsl.ts`), compiled once
 * per backend and plan: they are generated with the feature map's derivative spliced in
 * (`featureMapGradient`; Performer's Jacobian is its own sum), so a custom map with an op that
 * has no derivative is refused here, before anything is allocated. The key-side pipelines come
 * from the forward's `linearKernels`.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import { featureMapGradient } from "../../core/score_mod_gradient.ts";
import {
  featureMapLiterals,
  type LinearCompiler,
  normalizerOf,
  paramsOf,
  runLabel,
} from "./_linear_kernels.ts";
import { perPlan } from "./_pipelines.ts";
import type { LinearParams } from "./kernels/linear_wgsl.ts";
import {
  adjointWgsl,
  dPhiKWgsl,
  dPhiQWgsl,
  dValueWgsl,
  momentChunksWgsl,
  momentScanWgsl,
  pullbackWgsl,
  queryStatesWgsl,
  reverseScanWgsl,
  rowTermsWgsl,
  weightsWgsl,
} from "./kernels/linear_backward_wgsl.ts";
import { packF16Wgsl } from "./kernels/materialized_wgsl.ts";

/** The passes of the decay's gradient: the key-side moments, their scan, the rows' terms. */
export interface DecayKernels {
  readonly moments: GPUComputePipeline;
  readonly momentScan: GPUComputePipeline;
  readonly rowTerms: GPUComputePipeline;
}

/** The backward pipelines of a linear plan. */
export interface LinearBackwardKernels {
  readonly adjoint: GPUComputePipeline;
  /** The intra-chunk weights (causal plans). */
  readonly weights?: GPUComputePipeline;
  readonly dPhiQ: GPUComputePipeline;
  readonly queryStates: GPUComputePipeline;
  readonly reverseScan: GPUComputePipeline;
  readonly dPhiK: GPUComputePipeline;
  readonly dValue: GPUComputePipeline;
  /** Causal plans with a decay. */
  readonly decay?: DecayKernels;
  readonly pullback: { readonly q: GPUComputePipeline; readonly k: GPUComputePipeline };
  /** Packs an f32 gradient to f16 storage. */
  readonly pack?: GPUComputePipeline;
  /** The map's and its derivative's lifted literals (custom maps only). */
  readonly literals?: Uint32Array;
}

async function compile(
  compiler: LinearCompiler,
  plan: KernelPlan,
): Promise<LinearBackwardKernels> {
  const { pipelines, device } = compiler;
  const label = `backward ${runLabel(plan)}`;
  const base = paramsOf(plan);
  const map = base.featureMap;
  const gradient = map.kind === "performer" ? undefined : featureMapGradient(map, "webgpu");
  const params: LinearParams = gradient ? { ...base, featureGradient: gradient } : base;
  const literals = featureMapLiterals(device, map, gradient);
  const get = (name: string, source: string) => pipelines.get(`${name}: ${label}`, source);
  const decay = base.causal && normalizerOf(plan).decay !== undefined;
  const [adjoint, weights, dPhiQ, queryStates, reverseScan, dPhiK, dValue, pq, pk, pack] =
    await Promise.all([
      get("adjoint", adjointWgsl(params)),
      base.causal ? get("weights", weightsWgsl(params)) : null,
      get("dphi q", dPhiQWgsl(params)),
      get("query states", queryStatesWgsl(params)),
      get("reverse scan", reverseScanWgsl(params)),
      get("dphi k", dPhiKWgsl(params)),
      get("dv", dValueWgsl(params)),
      get("pullback q", pullbackWgsl(params, "q")),
      get("pullback k", pullbackWgsl(params, "k")),
      plan.dtype === "f16" ? pipelines.get("pack f16", packF16Wgsl()) : null,
    ]);
  const terms = decay
    ? await Promise.all([
      get("moments", momentChunksWgsl(params)),
      get("moment scan", momentScanWgsl(params)),
      get("row terms", rowTermsWgsl(params)),
    ])
    : undefined;
  return {
    adjoint,
    ...(weights ? { weights } : {}),
    dPhiQ,
    queryStates,
    reverseScan,
    dPhiK,
    dValue,
    ...(terms ? { decay: { moments: terms[0], momentScan: terms[1], rowTerms: terms[2] } } : {}),
    pullback: { q: pq, k: pk },
    ...(pack ? { pack } : {}),
    ...(literals ? { literals } : {}),
  };
}

/**
 * A linear plan's backward pipelines, generated once per plan object and backend.
 * @throws {UnsupportedSpecError} For a custom map with an op that has no derivative, or whose
 * literals exceed the uniform binding size.
 * @throws {Error} If a shader fails to compile, naming it.
 */
export const linearBackwardKernels: (
  compiler: LinearCompiler,
  plan: KernelPlan,
) => Promise<LinearBackwardKernels> = perPlan(compile);
