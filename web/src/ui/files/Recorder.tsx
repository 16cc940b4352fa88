// The voice-note recorder (MediaRecorder). Two ways to use it, as in
// WeCom: hold the microphone button and release to send, or click it and
// then press send (or cancel). It stops and sends by itself at 60 s.
//
// The composer owns the microphone button and tells the recorder whether
// it is still held; this component owns the recording.
import { useEffect, useRef, useState } from 'preact/hooks';
import { t } from '../../i18n.ts';
import { VOICE_MAX_MS, clock } from '../../logic/files.ts';
import { errorText } from '../../util.ts';

/** Below this a hold is taken for a click (the recorder stays open). */
const HOLD_MS = 450;
/** Shorter notes are not sent (a slip of the finger). */
const MIN_MS = 700;

/**
 * The first container/codec the browser records: Ogg first (the server
 * recognises it as audio from its first bytes), then WebM (Chromium's
 * only choice), both Opus: a minute is about 250 KB.
 */
function pickMime(): string | undefined {
  for (const m of ['audio/ogg;codecs=opus', 'audio/webm;codecs=opus', 'audio/webm', 'audio/mp4']) {
    if (MediaRecorder.isTypeSupported?.(m)) return m;
  }
  return undefined;
}

interface Rec {
  mr: MediaRecorder;
  stream: MediaStream;
  parts: Blob[];
  started: number;
  then: 'send' | 'cancel' | null;
}

export function Recorder(props: {
  /** The microphone button is still held down. */
  holding: boolean;
  /** When it was pressed (performance.now()). */
  pressedAt: number;
  onSend: (audio: Blob, durationMs: number, mime: string) => void;
  onClose: () => void;
}) {
  const [phase, setPhase] = useState<'starting' | 'recording' | 'error'>('starting');
  const [elapsed, setElapsed] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const rec = useRef<Rec | null>(null);
  const cb = useRef(props);
  cb.current = props;

  const finish = (then: 'send' | 'cancel') => {
    const r = rec.current;
    if (!r || r.then) return;
    r.then = then;
    if (r.mr.state !== 'inactive') r.mr.stop();
  };

  // Start on mount; stop (without sending) when closed.
  useEffect(() => {
    let live = true;
    (async () => {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
        if (!live) {
          for (const tr of stream.getTracks()) tr.stop();
          return;
        }
        const mime = pickMime();
        const mr = new MediaRecorder(stream, mime ? { mimeType: mime, audioBitsPerSecond: 32000 } : undefined);
        const r: Rec = { mr, stream, parts: [], started: performance.now(), then: null };
        mr.ondataavailable = (e) => {
          if (e.data.size) r.parts.push(e.data);
        };
        mr.onstop = () => {
          for (const tr of stream.getTracks()) tr.stop();
          const ms = Math.min(VOICE_MAX_MS, performance.now() - r.started);
          if (r.then === 'send') {
            if (ms < MIN_MS) {
              setError(t('voiceTooShort'));
              setPhase('error');
              return;
            }
            const type = mr.mimeType || mime || 'audio/webm';
            cb.current.onSend(new Blob(r.parts, { type }), ms, type);
          }
          if (live) cb.current.onClose();
        };
        rec.current = r;
        mr.start(1000);
        r.started = performance.now();
        setPhase('recording');
      } catch (e) {
        if (!live) return;
        setError(t('micFailed', { msg: errorText(e) }));
        setPhase('error');
      }
    })();
    return () => {
      live = false;
      finish('cancel');
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // The clock, and the 60 s limit.
  useEffect(() => {
    if (phase !== 'recording') return;
    const i = setInterval(() => {
      const r = rec.current;
      if (!r) return;
      const ms = performance.now() - r.started;
      setElapsed(ms);
      if (ms >= VOICE_MAX_MS) finish('send');
    }, 200);
    return () => clearInterval(i);
  }, [phase]);

  // Released after a real hold: send. A short press was a click, and a
  // release while the browser was still asking for the microphone leaves
  // it open too (the phase was not 'recording' yet): press send then.
  useEffect(() => {
    if (props.holding || !rec.current || phase !== 'recording') return;
    if (performance.now() - props.pressedAt >= HOLD_MS) finish('send');
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [props.holding]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        finish('cancel');
        if (!rec.current) props.onClose();
      }
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  if (phase === 'error') {
    return (
      <div class="recorder" data-testid="recorder" data-state="error">
        <span class="warn" role="alert">
          {error}
        </span>
        <button type="button" class="icon-btn" aria-label={t('close')} onClick={props.onClose}>
          ×
        </button>
      </div>
    );
  }
  return (
    <div class="recorder" data-testid="recorder" data-state={phase}>
      <span class="rec-dot" aria-hidden="true" />
      <span role="status">
        {phase === 'starting' ? t('loading') : `${t('recording')} ${clock(elapsed)} / ${clock(VOICE_MAX_MS)}`}
      </span>
      {props.holding ? (
        <span class="muted">{t('recordingHint')}</span>
      ) : (
        <>
          <button type="button" class="primary small" onClick={() => finish('send')} disabled={phase !== 'recording'} data-testid="voice-send">
            {t('sendVoice')}
          </button>
          <button type="button" class="small" onClick={() => (rec.current ? finish('cancel') : props.onClose())} data-testid="voice-cancel">
            {t('cancelRecording')}
          </button>
        </>
      )}
    </div>
  );
}
