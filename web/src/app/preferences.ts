// The person's locale and unit system: from their profile once signed in, the browser before.
import { useMe } from "./me";

export function usePreferences(): { locale: string; units: "metric" | "imperial" } {
  const me = useMe();
  const user = me.data?.user;
  return {
    locale: user?.locale ?? navigator.language,
    units: (user?.units as "metric" | "imperial" | undefined) ?? "metric",
  };
}
