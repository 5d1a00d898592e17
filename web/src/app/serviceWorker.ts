// Installs the service worker that keeps the app shell for offline starts (never API data).
export function registerServiceWorker(): void {
  if (!("serviceWorker" in navigator) || !import.meta.env.PROD) return;
  const register = () => {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {
      // Without it the app still works; it only will not start offline.
    });
  };
  // After the page's own loading, so installing it never slows the first screen.
  if (document.readyState === "complete") register();
  else window.addEventListener("load", register, { once: true });
}
