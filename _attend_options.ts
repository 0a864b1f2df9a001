/**
 * The options `attend()` and `pagedAttend()` share (masks, softcap, extra transforms, scale,
 * lse): their checks, made before any work, and the transforms they stand for.
 * @module
 */
import { causal as causalMask, window as windowMask } from "./core/masks.ts";
import { mask as maskTransform, type Transform } from "./core/transforms.ts";
import type { SharedAttendOptions } from "./attend.ts";
import { softcap as softcapTransform } from "./core/score_mods.ts";
import { assertExpr } from "./core/expr_tree.ts";
import {
  assertFinite,
  assertInteger,
  assertObject,
  checkOptions,
  fail,
  MAX_SIZE,
  type OptionKind,
} from "./core/_check.ts";
import type { Backend } from "./backends/backend.ts";

/** The option kinds of `SharedAttendOptions`. */
export const SHARED_OPTIONS: Readonly<Record<keyof SharedAttendOptions, OptionKind>> = {
  scale: "number",
  causal: "boolean",
  window: "object",
  mask: "object",
  softcap: "number",
  transforms: "array",
  lse: "boolean",
};

/** Checks the shared options' values (their kinds already checked). */
export function checkSharedOptions(context: string, opts: SharedAttendOptions): void {
  if (opts.window !== undefined) {
    checkOptions(context, "options.window", opts.window, { left: "number", right: "number" });
    for (const side of ["left", "right"] as const) {
      assertInteger(opts.window[side], context, `options.window.${side}`, 0, MAX_SIZE);
    }
  }
  if (opts.mask !== undefined) assertExpr(opts.mask, context, "options.mask", "mask");
  if (opts.softcap !== undefined) assertFinite(opts.softcap, context, "options.softcap", true);
  opts.transforms?.forEach((t, i) => {
    if (typeof t !== "function") fail("type", context, `options.transforms[${i}]`, "a function", t);
  });
}

/** The masks and modifiers the options ask for, then their extra transforms. */
export function sharedTransforms(opts: SharedAttendOptions): Transform[] {
  const transforms: Transform[] = [];
  if (opts.causal) transforms.push(maskTransform(causalMask()));
  if (opts.window) transforms.push(maskTransform(windowMask(opts.window.left, opts.window.right)));
  if (opts.mask) transforms.push(maskTransform(opts.mask));
  if (opts.softcap !== undefined) transforms.push(softcapTransform(opts.softcap));
  return transforms;
}

/** Checks that `backend` plans and runs. */
export function assertBackend(context: string, backend: Backend): void {
  assertObject(backend, context, "backend", "a Backend");
  for (const method of ["plan", "run"] as const) {
    if (typeof backend[method] !== "function") {
      fail("type", context, `backend.${method}`, "a function", backend[method]);
    }
  }
}
