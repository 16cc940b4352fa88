import { getLang, setLang, t, type Lang } from '../i18n.ts';

export function LangSwitch() {
  return (
    <div class="lang-switch">
      <label for="lang-select" class="sr-only">
        {t('language')}
      </label>
      <select
        id="lang-select"
        data-testid="lang-select"
        value={getLang()}
        onChange={(e) => setLang((e.target as HTMLSelectElement).value as Lang)}
      >
        <option value="zh" lang="zh-CN">
          中文
        </option>
        <option value="en" lang="en">
          English
        </option>
      </select>
    </div>
  );
}
