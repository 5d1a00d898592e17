import type { ReactNode } from "react";

/** The centred card of the screens before signing in. */
export function AuthFrame({ title, children }: { title: string; children: ReactNode }) {
  return (
    <main id="main" className="auth-frame">
      <div className="auth-card">
        <div className="brand auth-brand">
          <img src="/icon.svg" alt="" width={36} height={36} />
          <span>KAI</span>
        </div>
        <h1>{title}</h1>
        {children}
      </div>
    </main>
  );
}
