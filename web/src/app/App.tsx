import { QueryClientProvider, type QueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { RouterProvider, createBrowserRouter } from "react-router";

import { ApiError } from "../api/problem";
import { refresh } from "../auth/session";
import { changeLocale } from "../i18n";
import { useMe } from "./me";
import { FreshQueryClient } from "./queryClient";
import { routes } from "./routes";

function makeQueryClient(): QueryClient {
  return new FreshQueryClient({
    defaultOptions: {
      queries: {
        // A 4xx will not change by asking again; a network error or a 5xx might.
        retry: (failures, error) => failures < 2 && !(error instanceof ApiError && error.status < 500),
        refetchOnWindowFocus: false,
        staleTime: 10_000,
      },
    },
  });
}

/** Follows the person's locale once their profile is known. */
function LocaleFromProfile() {
  const me = useMe();
  const locale = me.data?.user?.locale;
  useEffect(() => {
    if (locale) changeLocale(locale);
  }, [locale]);
  return null;
}

export function App() {
  const [client] = useState(makeQueryClient);
  const [router] = useState(() => createBrowserRouter(routes));
  useEffect(() => {
    // The cookie, if any, becomes this tab's session.
    void refresh();
  }, []);
  return (
    <QueryClientProvider client={client}>
      <LocaleFromProfile />
      <RouterProvider router={router} />
    </QueryClientProvider>
  );
}
