/** Sign in: paste a token (dev servers, or any token the issuer minted), or OIDC code + PKCE. */
import { useEffect, useState, type FormEvent } from 'react';
import { beginOidcLogin, loadAuthConfig, looksLikeJwt, saveToken } from '../auth.ts';
import { useTitle } from '../hooks.ts';
import type { AuthConfig } from '../types.ts';

export function LoginPage({ reason, returnTo, onSignedIn }: { reason?: string; returnTo: string; onSignedIn: () => void }) {
  useTitle('Sign in');
  const [config, setConfig] = useState<AuthConfig | undefined>();
  const [configError, setConfigError] = useState<string | undefined>();
  const [token, setToken] = useState('');
  const [problem, setProblem] = useState<string | undefined>();
  const [ssoProblem, setSsoProblem] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    loadAuthConfig().then(setConfig, (error: unknown) => setConfigError((error as Error).message));
  }, []);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const value = token.trim().replace(/^Bearer\s+/i, '');
    if (!looksLikeJwt(value)) {
      setProblem('That is not a token: paste the whole JWT (three dot-separated parts), e.g. the output of `npx forge dev-token --sub you --roles developer`.');
      return;
    }
    saveToken(value);
    onSignedIn();
  };

  const oidc = async () => {
    if (!config) return;
    setBusy(true);
    setSsoProblem(undefined);
    try {
      await beginOidcLogin(config, returnTo === '/login' || returnTo.startsWith('/login/') ? '/' : returnTo);
    } catch (error) {
      setSsoProblem(`Single sign-on could not start: ${(error as Error).message}`);
      setBusy(false);
    }
  };

  return (
    <main className="page narrow login">
      <h1>Sign in to Forge</h1>
      {reason && <p className="notice" role="status">{reason}</p>}
      {configError && <p className="notice">The server's sign-in settings could not be read ({configError}); you can still paste a token.</p>}
      {config?.mode === 'oidc' && config.client_id && (
        <section aria-labelledby="sso">
          <h2 id="sso">Single sign-on</h2>
          <p>Sign in at <code>{config.issuer}</code>.</p>
          <button type="button" className="primary" onClick={() => void oidc()} disabled={busy}>{busy ? 'Redirecting…' : 'Sign in with SSO'}</button>
          {ssoProblem && <p className="field-error" role="alert">{ssoProblem}</p>}
        </section>
      )}
      <section aria-labelledby="paste">
        <h2 id="paste">{config?.mode === 'oidc' && config.client_id ? 'Or paste a token' : 'Paste a token'}</h2>
        {config?.mode !== 'oidc' && (
          <p>This server uses its development issuer. Mint a token with
            {' '}<code>npx forge dev-token --sub you --roles developer,approver,operator</code>{' '}
            or use the sign-in link the server printed when it started.</p>
        )}
        <form onSubmit={submit}>
          <label htmlFor="token">Access token</label>
          <textarea id="token" name="token" rows={4} spellCheck={false} autoComplete="off" value={token}
            onChange={(e) => { setToken(e.target.value); setProblem(undefined); }}
            aria-invalid={problem !== undefined} aria-describedby={problem ? 'token-problem' : undefined} />
          {problem && <p id="token-problem" className="field-error" role="alert">{problem}</p>}
          <button type="submit" className="primary">Sign in</button>
        </form>
      </section>
    </main>
  );
}
