/**
 * The WGSL that opens a backward tile pass's walk over the query heads whose tiles meet the owned
 * one, shared by the software and the register-block kernels: a key-tile (`kv`) pass loops over
 * its KV head's group of query heads in order (GQA: dK and dV summed in head order); a query-tile
 * pass has one head, and `ownPrologue` (its own rows' loads) runs before the walk. Both leave one
 * block open, which the caller closes after the walk.
 * @module
 */

/**
 * Opens the walk: defines `b`, `h`, `bh_q` and `bh_k` for each query head a workgroup walks.
 *
 * @param kv Whether the workgroup owns a key tile.
 * @param ownPrologue WGSL run once before the walk in a query-tile pass.
 * @returns The opening WGSL, leaving one `{` to close.
 */
export function headWalkWgsl(kv: boolean, ownPrologue: string): string {
  return kv
    ? `let kv_heads = p.heads / p.group;
  let b = bh_own / kv_heads;
  let bh_k = bh_own;
  for (var h = (bh_own % kv_heads) * p.group; h < (bh_own % kv_heads + 1u) * p.group; h++) {
    let bh_q = b * p.heads + h;`
    : `let b = bh_own / p.heads;
  let h = bh_own % p.heads;
  let bh_q = bh_own;
  let bh_k = b * (p.heads / p.group) + h / p.group;
  ${ownPrologue}
  {`;
}
