/**
 * Central finite differences of a scalar loss, and the check that an analytic gradient matches
 * them: how the hand-written backward oracles are themselves verified.
 * @module
 */
import { assertLessOrEqual } from "@std/assert";

/**
 * Central differences of `loss()` along each element of `x`, which is modified in place and
 * restored.
 */
export function centralDifferences(
  loss: () => number,
  x: { [n: number]: number; readonly length: number },
  eps = 1e-5,
): number[] {
  return Array.from({ length: x.length }, (_, n) => {
    const keep = x[n];
    x[n] = keep + eps;
    const up = loss();
    x[n] = keep - eps;
    const down = loss();
    x[n] = keep;
    return (up - down) / (2 * eps);
  });
}

/** Asserts `|analytic − fd| ≤ tol·(1 + |fd|)` element by element, naming the first that is not. */
export function assertMatchesDifferences(
  name: string,
  analytic: ArrayLike<number>,
  fd: readonly number[],
  tol: number,
): void {
  for (let n = 0; n < fd.length; n++) {
    const err = Math.abs(analytic[n] - fd[n]);
    assertLessOrEqual(
      err,
      tol + tol * Math.abs(fd[n]),
      `${name}[${n}]: ${analytic[n]} vs ${fd[n]}`,
    );
  }
}
