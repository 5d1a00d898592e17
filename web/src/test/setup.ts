import "@testing-library/jest-dom/vitest";

import { setupI18n } from "../i18n";

setupI18n("en");
