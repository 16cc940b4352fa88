import { Component, type FunctionComponent } from 'preact';

/** Like compat's memo, without pulling in preact/compat. */
export function memo<P extends object>(fn: FunctionComponent<P>, equal: (a: P, b: P) => boolean): FunctionComponent<P> {
  class Memo extends Component<P> {
    shouldComponentUpdate(next: P): boolean {
      return !equal(this.props as P, next);
    }
    render(props: P) {
      return fn(props);
    }
  }
  (Memo as unknown as { displayName: string }).displayName = `Memo(${fn.name})`;
  return Memo as unknown as FunctionComponent<P>;
}
