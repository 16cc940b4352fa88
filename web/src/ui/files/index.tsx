// The picture viewer and the voice recorder: one chunk (and stylesheet)
// loaded on demand by ../lazy.ts.
import './files.css';

export { Lightbox } from './Lightbox.tsx';
export { Recorder } from './Recorder.tsx';
