// A customer group (客户群) seen from the external-contacts view: its
// members (which side each is on) and, for the owner, the keyword
// auto-replies editor.
import { useEffect, useState } from 'preact/hooks';
import { t } from '../../i18n.ts';
import {
  draftOf,
  emptyDraft,
  firstMatch,
  rulesFromDrafts,
  type MatchMode,
  type Rule,
  type RuleDraft,
  type RuleProblem,
} from '../../logic/external.ts';
import { go, href } from '../../router.ts';
import { errorText } from '../../state.ts';
import { Avatar } from '../Avatar.tsx';
import { useNarrow, useStore } from '../hooks.ts';
import * as x from './api.ts';
import { xt, type XKey } from './strings.ts';

const PROBLEM: Record<RuleProblem, XKey> = {
  tooMany: 'pTooMany',
  noKeywords: 'pNoKeywords',
  tooManyKeywords: 'pTooManyKeywords',
  keywordTooLong: 'pKeywordTooLong',
  noAnswer: 'pNoAnswer',
  answerTooLong: 'pAnswerTooLong',
};

export function CustomerGroupPage({ id }: { id: string }) {
  const store = useStore();
  const narrow = useNarrow();
  const cs = store.conversations.get(id);
  useEffect(() => {
    if (cs && !cs.members) store.loadMembers(cs).catch(() => {});
  }, [cs, store]);
  if (!cs) {
    return (
      <section class="ext-group">
        <p class="muted pad" role="status">
          {store.conversations.size ? xt('notCustomerGroup') : xt('loading')}
        </p>
      </section>
    );
  }
  const c = cs.conv;
  if (c.kind !== 'customer') {
    return (
      <section class="ext-group">
        <p class="muted pad">{xt('notCustomerGroup')}</p>
      </section>
    );
  }
  const me = store.api.userid ?? '';
  const isOwner = c.owner === me;
  const members = cs.members ? [...cs.members.keys()] : [];
  members.sort((a, b) => (a === c.owner ? -1 : b === c.owner ? 1 : store.name(a).localeCompare(store.name(b))));
  return (
    <section class="ext-group" aria-labelledby="xg-title" data-testid="customer-group" data-conv={c.id}>
      <header class="chat-head">
        {narrow && (
          <button type="button" class="icon-btn" aria-label={xt('back')} onClick={() => go({ name: 'external' })}>
            ‹
          </button>
        )}
        <Avatar name={c.name} group small />
        <div class="chat-title-box">
          <h2 id="xg-title">{c.name}</h2>
          <span class="muted">
            {xt('customerGroup')} · {xt('members', { n: c.member_count })}
          </span>
          <span class="tag ext">{t('externalTag')}</span>
        </div>
        <a class="btn" href={href({ name: 'chat', id: c.id })} data-testid="xg-open-chat">
          {xt('openChat')}
        </a>
      </header>
      <div class="ext-body">
        <h3 class="ext-sub">{xt('membersHeading')}</h3>
        <ul class="member-list" data-testid="xg-members">
          {members.map((u) => {
            const org = store.orgOf(u);
            return (
              <li key={u} data-userid={u}>
                <Avatar name={store.name(u)} small />
                <span class="grow">
                  {store.name(u)}
                  {org !== null && <span class="tag ext">{org ? `${xt('external')} · ${org}` : xt('external')}</span>}
                  {u === c.owner && <span class="tag">{xt('owner')}</span>}
                </span>
              </li>
            );
          })}
        </ul>
        <AutoReplies key={c.id} conv={c.id} editable={isOwner && !c.dissolved} />
      </div>
    </section>
  );
}

/** The group's keyword auto-replies: the owner adds, changes and removes rules; others read them. */
export function AutoReplies({ conv, editable }: { conv: string; editable: boolean }) {
  const store = useStore();
  const [drafts, setDrafts] = useState<RuleDraft[] | null>(null);
  const [saved, setSaved] = useState<Rule[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [probe, setProbe] = useState('');

  useEffect(() => {
    let live = true;
    x.autoReplies(store.api, conv).then(
      (r) => {
        if (!live) return;
        setSaved(r.rules);
        setDrafts(r.rules.map(draftOf));
      },
      (e) => live && setError(xt('error', { msg: errorText(e) })),
    );
    return () => {
      live = false;
    };
  }, [conv, store]);

  const change = (i: number, patch: Partial<RuleDraft>) => {
    if (!drafts) return;
    setDrafts(drafts.map((d, j) => (j === i ? { ...d, ...patch } : d)));
    setStatus(null);
  };

  const save = async (e: Event) => {
    e.preventDefault();
    if (!drafts) return;
    const r = rulesFromDrafts(drafts);
    if ('problem' in r) {
      setError(xt(PROBLEM[r.problem], { n: r.problem === 'tooMany' ? r.index : r.index + 1 }));
      return;
    }
    setBusy(true);
    setError(null);
    setStatus(null);
    try {
      const back = await x.setAutoReplies(store.api, conv, r.rules);
      setSaved(back.rules);
      setDrafts(back.rules.map(draftOf));
      setStatus(xt('saved'));
    } catch (err) {
      // The server's refusal names the rule (e.g. "rule 2: 1-20 keywords").
      setError(xt('error', { msg: errorText(err) }));
    } finally {
      setBusy(false);
    }
  };

  const hit = probe.trim() ? firstMatch(saved, probe) : null;
  return (
    <section class="auto-replies" aria-labelledby="ar-title" data-testid="auto-replies">
      <h3 id="ar-title" class="ext-sub">
        {xt('autoReplies')}
      </h3>
      <p class="muted">{xt('autoRepliesIntro')}</p>
      {!editable && <p class="muted">{xt('ownerOnly')}</p>}
      {!drafts ? (
        !error && <p role="status">{xt('loading')}</p>
      ) : (
        <form onSubmit={save} data-testid="auto-replies-form">
          {drafts.length === 0 && <p class="muted">{xt('noRules')}</p>}
          <ol class="rules">
            {drafts.map((d, i) => (
              <li key={i} class="rule" data-testid="ar-rule">
                <fieldset disabled={!editable || busy}>
                  <legend>{xt('ruleN', { n: i + 1 })}</legend>
                  <div class="field">
                    <label for={`ar-k-${i}`}>{xt('keywords')}</label>
                    <input
                      id={`ar-k-${i}`}
                      data-testid="ar-keywords"
                      value={d.keywords}
                      onInput={(e) => change(i, { keywords: (e.target as HTMLInputElement).value })}
                    />
                  </div>
                  <div class="field">
                    <label for={`ar-m-${i}`}>{xt('mode')}</label>
                    <select
                      id={`ar-m-${i}`}
                      data-testid="ar-mode"
                      value={d.mode}
                      onChange={(e) => change(i, { mode: (e.target as HTMLSelectElement).value as MatchMode })}
                    >
                      <option value="contains">{xt('modeContains')}</option>
                      <option value="exact">{xt('modeExact')}</option>
                    </select>
                  </div>
                  <div class="field">
                    <label for={`ar-a-${i}`}>{xt('answer')}</label>
                    <textarea
                      id={`ar-a-${i}`}
                      data-testid="ar-answer"
                      rows={2}
                      maxLength={1000}
                      value={d.answer}
                      onInput={(e) => change(i, { answer: (e.target as HTMLTextAreaElement).value })}
                    />
                  </div>
                  {editable && (
                    <button
                      type="button"
                      class="link-btn danger"
                      data-testid="ar-remove"
                      onClick={() => {
                        setDrafts(drafts.filter((_, j) => j !== i));
                        setStatus(null);
                      }}
                    >
                      {xt('removeRule', { n: i + 1 })}
                    </button>
                  )}
                </fieldset>
              </li>
            ))}
          </ol>
          {error && (
            <p class="form-error" role="alert" data-testid="ar-error">
              {error}
            </p>
          )}
          {status && (
            <p class="notice" role="status" data-testid="ar-status">
              {status}
            </p>
          )}
          {editable && (
            <div class="form-actions">
              <button
                type="button"
                data-testid="ar-add"
                disabled={busy}
                onClick={() => {
                  setDrafts([...drafts, emptyDraft()]);
                  setStatus(null);
                }}
              >
                {xt('addRule')}
              </button>
              <button type="submit" class="primary" disabled={busy} data-testid="ar-save">
                {busy ? xt('saving') : xt('save')}
              </button>
            </div>
          )}
        </form>
      )}
      {saved.length > 0 && (
        <div class="field ar-probe">
          <label for="ar-probe">{xt('tryIt')}</label>
          <input id="ar-probe" value={probe} onInput={(e) => setProbe((e.target as HTMLInputElement).value)} />
          {probe.trim() && (
            <p class="muted" role="status">
              {hit ? xt('wouldAnswer', { answer: hit.answer }) : xt('wouldNotAnswer')}
            </p>
          )}
        </div>
      )}
    </section>
  );
}
