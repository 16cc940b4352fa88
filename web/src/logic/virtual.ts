// Virtual list arithmetic: rows of different heights, measured once they
// have been rendered and estimated before. Pure, unit-tested.

export class HeightIndex {
  private keys: (string | number)[] = [];
  private measured = new Map<string | number, number>();
  private offsets: number[] = [0];
  private dirty = true;

  constructor(private estimate: number) {}

  /** The row keys, in order (the list changed). */
  setKeys(keys: (string | number)[]): void {
    this.keys = keys;
    this.dirty = true;
  }

  /** A rendered row's height. Returns true when it differs from what was assumed. */
  measure(key: string | number, height: number): boolean {
    const old = this.measured.get(key);
    if (old !== undefined && Math.abs(old - height) < 0.5) return false;
    this.measured.set(key, height);
    this.dirty = true;
    return true;
  }

  heightOf(key: string | number): number {
    return this.measured.get(key) ?? this.estimate;
  }

  private build(): void {
    if (!this.dirty) return;
    const n = this.keys.length;
    const off = new Array<number>(n + 1);
    off[0] = 0;
    for (let i = 0; i < n; i++) off[i + 1] = off[i] + this.heightOf(this.keys[i]);
    this.offsets = off;
    this.dirty = false;
  }

  get count(): number {
    return this.keys.length;
  }

  /** Top of row i (i = count gives the total height). */
  offset(i: number): number {
    this.build();
    return this.offsets[Math.max(0, Math.min(i, this.keys.length))];
  }

  get total(): number {
    return this.offset(this.keys.length);
  }

  /** Index of the row at pixel y. */
  indexAt(y: number): number {
    this.build();
    const off = this.offsets;
    let a = 0;
    let b = this.keys.length - 1;
    if (b < 0) return 0;
    while (a < b) {
      const m = (a + b + 1) >> 1;
      if (off[m] <= y) a = m;
      else b = m - 1;
    }
    return a;
  }

  /** Rows to render for a viewport, with `overscan` pixels above and below. */
  range(scrollTop: number, viewport: number, overscan: number): { start: number; end: number } {
    const n = this.keys.length;
    if (!n) return { start: 0, end: 0 };
    const start = this.indexAt(Math.max(0, scrollTop - overscan));
    const end = Math.min(n, this.indexAt(scrollTop + viewport + overscan) + 1);
    return { start, end };
  }
}
