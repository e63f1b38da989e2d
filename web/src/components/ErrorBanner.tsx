/** An API refusal or failure, said plainly: the server's message, its code, and the details that help. */
import type { ApiError } from '../api.ts';

const HELPFUL_DETAILS = ['required', 'actual', 'permission', 'roles_granting', 'your_roles', 'reason', 'environment', 'allowed_triggers', 'allowed_branches', 'freeze_reason', 'field'];

export function ErrorBanner({ error, title }: { error: ApiError | undefined; title?: string }) {
  if (!error) return null;
  const details = Object.entries(error.details).filter(([key]) => HELPFUL_DETAILS.includes(key));
  return (
    <div className="error-banner" role="alert">
      <strong>{title ?? (error.status === 403 ? 'Not allowed' : error.status === 0 ? 'Offline' : 'Error')}</strong>
      {': '}{error.message}
      <span className="error-code"> ({error.status ? `${error.status} ` : ''}{error.code})</span>
      {details.length > 0 && (
        <dl className="error-details">
          {details.map(([key, value]) => (
            <div key={key}><dt>{key.replace(/_/g, ' ')}</dt><dd>{Array.isArray(value) ? value.join(', ') : String(value)}</dd></div>
          ))}
        </dl>
      )}
    </div>
  );
}
