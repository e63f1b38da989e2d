/** The app shell: sign-in gate, the signed-in user, navigation and the routes. */
import { useCallback, useEffect, useRef, useState } from 'react';
import { Link, Redirect, Route, Switch, useLocation } from 'wouter';
import { api, ApiError, setUnauthenticatedHandler } from './api.ts';
import { completeOidcLogin, isOidcCallback, loadAuthConfig, signOut, storedToken, takeTokenFromFragment } from './auth.ts';
import { ErrorBanner } from './components/ErrorBanner.tsx';
import { MeContext } from './hooks.ts';
import { EnvironmentsPage } from './pages/Environments.tsx';
import { LoginPage } from './pages/Login.tsx';
import { ReleasesPage } from './pages/Releases.tsx';
import { RunPage } from './pages/Run.tsx';
import { RunsPage } from './pages/Runs.tsx';
import type { Me } from './types.ts';

type Session = { state: 'loading' } | { state: 'signed-out'; reason?: string } | { state: 'signed-in'; me: Me } | { state: 'error'; error: ApiError };

export function App() {
  const [session, setSession] = useState<Session>({ state: 'loading' });
  const [location, navigate] = useLocation();

  const loadMe = useCallback(async () => {
    if (!storedToken()) return setSession({ state: 'signed-out' });
    try {
      setSession({ state: 'signed-in', me: await api<Me>('/v1/me') });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) setSession({ state: 'signed-out', reason: 'Your token was not accepted: it may have expired. Sign in again.' });
      else setSession({ state: 'error', error: error instanceof ApiError ? error : new ApiError(0, 'client_error', String(error)) });
    }
  }, []);

  useEffect(() => {
    setUnauthenticatedHandler(() => setSession({ state: 'signed-out', reason: 'Your session ended (the server refused the token). Sign in again.' }));
    takeTokenFromFragment();
    if (isOidcCallback()) {
      loadAuthConfig().then(completeOidcLogin).then((next) => {
        navigate(next, { replace: true });
        return loadMe();
      }).catch((error: unknown) => {
        // Off the callback: its code and state are spent, and signing in again must not return here.
        navigate('/login', { replace: true });
        setSession({ state: 'signed-out', reason: `Sign-in failed: ${(error as Error).message}. Nothing was stored; sign in again.` });
      });
      return;
    }
    void loadMe();
  }, [loadMe, navigate]);

  if (session.state === 'loading') return <div className="loading-screen" aria-busy="true">Loading…</div>;
  if (session.state === 'signed-out') return <LoginPage reason={session.reason} returnTo={`${location}${window.location.search}`} onSignedIn={loadMe} />;
  if (session.state === 'error') {
    return (
      <main className="page narrow">
        <ErrorBanner error={session.error} title="Forge is not reachable" />
        <button type="button" onClick={() => void loadMe()}>Try again</button>
      </main>
    );
  }
  const { me } = session;
  return <SignedIn me={me} onSignOut={() => { signOut(); setSession({ state: 'signed-out' }); }} />;
}

function SignedIn({ me, onSignOut }: { me: Me; onSignOut: () => void }) {
  const [location] = useLocation();
  // Moving to another section (Runs, Releases, Environments) puts focus at the top of the new page,
  // as a page load would; moves within a page (a step, a cell) keep focus where it is.
  const section = location.split('/')[1] ?? '';
  const firstSection = useRef(section);
  useEffect(() => {
    if (section === firstSection.current) return;
    firstSection.current = section;
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [section]);
  return (
    <MeContext.Provider value={me}>
      <a className="skip-link" href="#main">Skip to content</a>
      <header className="topbar">
        <Link href="/runs" className="brand">Forge</Link>
        <nav aria-label="Main">
          <NavLink href="/runs" label="Runs" />
          <NavLink href="/releases" label="Releases" />
          <NavLink href="/environments" label="Environments" />
        </nav>
        <div className="user">
          <span title={`roles: ${me.roles.join(', ') || 'none (read only)'}`}>{me.username ?? me.subject}</span>
          <span className="roles">{me.roles.join(' · ') || 'viewer'}</span>
          <button type="button" className="link-button" onClick={onSignOut}>Sign out</button>
        </div>
      </header>
      <main id="main" className="page" tabIndex={-1}>
        <Switch>
          <Route path="/"><Redirect to="/runs" /></Route>
          <Route path="/login"><Redirect to="/runs" /></Route>
          <Route path="/runs" component={RunsPage} />
          <Route path="/runs/:id">{(params) => <RunPage runId={params.id} />}</Route>
          <Route path="/runs/:id/steps/:stepId">{(params) => <RunPage runId={params.id} stepId={params.stepId} />}</Route>
          <Route path="/releases" component={ReleasesPage} />
          <Route path="/environments" component={EnvironmentsPage} />
          <Route><p>No such page. <Link href="/runs">Go to the runs</Link>.</p></Route>
        </Switch>
      </main>
    </MeContext.Provider>
  );
}

function NavLink({ href, label }: { href: string; label: string }) {
  const [location] = useLocation();
  const current = location === href || location.startsWith(`${href}/`);
  return <Link href={href} className={current ? 'nav-link current' : 'nav-link'} aria-current={current ? 'page' : undefined}>{label}</Link>;
}
