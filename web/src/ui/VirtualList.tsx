import type { ComponentChildren, VNode } from 'preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { HeightIndex } from '../logic/virtual.ts';

export interface VirtualListProps<R extends { key: string }> {
  rows: readonly R[];
  renderRow: (row: R) => VNode;
  /** Above the rows (e.g. "load older"), not virtualized. */
  header?: ComponentChildren;
  /** Scrolled near the top: load older rows. */
  onNearTop?: () => void;
  /** Whether the view is at the bottom (new rows keep it there). */
  onBottomChange?: (atBottom: boolean) => void;
  label: string;
  testid?: string;
  /** Changing it scrolls to the bottom (e.g. after sending). */
  bottomSignal?: number;
}

const OVERSCAN = 600;
const ESTIMATE = 68;

/**
 * A vertical list that renders only the rows in and near the viewport:
 * spacers stand in for the others, sized from measured (or estimated)
 * heights. The view sticks to the bottom while it is there; otherwise the
 * row at the top stays in place when rows are added above or re-measured.
 */
export function VirtualList<R extends { key: string }>(props: VirtualListProps<R>) {
  const scroller = useRef<HTMLDivElement>(null);
  const headerEl = useRef<HTMLDivElement>(null);
  const rowsEl = useRef<HTMLDivElement>(null);
  const index = useRef(new HeightIndex(ESTIMATE)).current;
  const view = useRef({ top: 0, height: 800 });
  const stick = useRef(true);
  const anchor = useRef<{ key: string; delta: number } | null>(null);
  const frame = useRef(0);
  const passes = useRef(0);
  const lastSignal = useRef(props.bottomSignal);
  const [, force] = useState(0);

  const keys = props.rows.map((r) => r.key);
  index.setKeys(keys);
  const headerH = headerEl.current?.offsetHeight ?? 0;
  const { start, end } = index.range(Math.max(0, view.current.top - headerH), view.current.height, OVERSCAN);
  const padTop = index.offset(start);
  const padBottom = index.total - index.offset(end);

  const record = () => {
    const s = scroller.current;
    if (!s) return;
    view.current = { top: s.scrollTop, height: s.clientHeight || 800 };
    const atBottom = s.scrollHeight - s.scrollTop - s.clientHeight < 40;
    if (atBottom !== stick.current) props.onBottomChange?.(atBottom);
    stick.current = atBottom;
    const h = headerEl.current?.offsetHeight ?? 0;
    if (keys.length) {
      const i = index.indexAt(Math.max(0, s.scrollTop - h));
      anchor.current = { key: keys[i], delta: h + index.offset(i) - s.scrollTop };
    }
  };

  useLayoutEffect(() => {
    const s = scroller.current;
    const rowsBox = rowsEl.current;
    if (!s || !rowsBox) return;
    if (props.bottomSignal !== lastSignal.current) {
      lastSignal.current = props.bottomSignal;
      stick.current = true;
    }
    let changed = false;
    for (const el of Array.from(rowsBox.children) as HTMLElement[]) {
      const k = el.dataset.key;
      if (k !== undefined) changed = index.measure(k, el.offsetHeight) || changed;
    }
    const h = headerEl.current?.offsetHeight ?? 0;
    if (stick.current) {
      const want = s.scrollHeight - s.clientHeight;
      if (Math.abs(s.scrollTop - want) > 1) s.scrollTop = want;
    } else if (anchor.current) {
      const i = keys.indexOf(anchor.current.key);
      if (i >= 0) {
        const want = h + index.offset(i) - anchor.current.delta;
        if (Math.abs(s.scrollTop - want) > 1) s.scrollTop = want;
      }
    }
    view.current = { top: s.scrollTop, height: s.clientHeight || 800 };
    // Heights changed: render again with the real sizes (a few passes at most).
    if (changed && passes.current < 4) {
      passes.current++;
      force((x) => x + 1);
    } else {
      passes.current = 0;
    }
  });

  useLayoutEffect(() => {
    const s = scroller.current!;
    const ro = new ResizeObserver(() => {
      const wasBottom = stick.current;
      view.current = { top: s.scrollTop, height: s.clientHeight || 800 };
      if (wasBottom) s.scrollTop = s.scrollHeight;
      force((x) => x + 1);
    });
    ro.observe(s);
    return () => ro.disconnect();
  }, []);

  const onScroll = () => {
    record();
    const s = scroller.current;
    if (s && s.scrollTop < 300) props.onNearTop?.();
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      force((x) => x + 1);
    });
  };

  return (
    <div
      class="vlist"
      ref={scroller}
      onScroll={onScroll}
      role="log"
      aria-label={props.label}
      tabIndex={0}
      data-testid={props.testid}
      data-rows={props.rows.length}
    >
      <div ref={headerEl}>{props.header}</div>
      <div ref={rowsEl} class="vrows">
        <div class="vspacer" style={{ height: `${padTop}px` }} aria-hidden="true" />
        {props.rows.slice(start, end).map((r) => props.renderRow(r))}
        <div class="vspacer" style={{ height: `${padBottom}px` }} aria-hidden="true" />
      </div>
    </div>
  );
}
