// The token an emailed link carries: read once, then taken out of the address bar so it is in
// no history entry, bookmark or screenshot.
import { useState } from "react";

export function useLinkToken(): string | null {
  const [token] = useState(() => {
    const url = new URL(window.location.href);
    const value = url.searchParams.get("token");
    if (value) {
      url.searchParams.delete("token");
      window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
    }
    return value;
  });
  return token;
}
