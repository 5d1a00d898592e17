// The catalog's one search box: completions as you type (a listbox the arrow keys walk), Enter
// searches for what is typed or opens the suggestion chosen.
import { useQuery } from "@tanstack/react-query";
import { useEffect, useId, useRef, useState, type KeyboardEvent } from "react";
import { useTranslation } from "react-i18next";

import { api, type Schemas } from "../../api/client";
import { unwrap } from "../../api/problem";

export type Suggestion = Schemas["Suggestion"];

export function useDebounced<T>(value: T, delay: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = window.setTimeout(() => setSettled(value), delay);
    return () => window.clearTimeout(timer);
  }, [value, delay]);
  return settled;
}

export function SearchBox({
  value,
  onSearch,
  onPick,
}: {
  value: string;
  onSearch: (text: string, typing?: boolean) => void;
  onPick: (suggestion: Suggestion) => void;
}) {
  const { t } = useTranslation("catalog");
  const id = useId();
  const [text, setText] = useState(value);
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(-1);
  // What the results show now. A change from outside (a link, the back button) fills the box;
  // the results catching up with the typing must not overwrite what was typed since.
  const shown = useRef(value);
  useEffect(() => {
    if (value !== shown.current) {
      shown.current = value;
      setText(value);
    }
  }, [value]);
  const typed = useDebounced(text.trim(), 150);
  // Results follow the typing once it pauses: search as you type.
  const live = useDebounced(text.trim(), 80);
  useEffect(() => {
    if (live === shown.current) return;
    shown.current = live;
    onSearch(live, true);
    // onSearch changes with every render of the page; only a new pause in typing searches.
  }, [live]);
  function search(query: string) {
    shown.current = query;
    onSearch(query);
  }
  const suggestions = useQuery({
    queryKey: ["catalog", "suggest", typed],
    queryFn: async () => unwrap(await api.GET("/api/v1/search/suggest", { params: { query: { q: typed, limit: 8 } } })),
    enabled: open && typed.length > 0,
    staleTime: 30_000,
  });
  const items = open && typed.length > 0 ? (suggestions.data?.suggestions ?? []) : [];
  const expanded = items.length > 0;
  const listId = `${id}-list`;
  const optionId = (index: number) => `${id}-option-${index}`;

  function choose(index: number) {
    const suggestion = items[index];
    setOpen(false);
    setActive(-1);
    if (!suggestion) return;
    if (suggestion.kind === "material" && suggestion.id) onPick(suggestion);
    else if (suggestion.kind === "category" && suggestion.id) onPick(suggestion);
    else {
      setText(suggestion.text);
      search(suggestion.text);
    }
  }

  function keyDown(event: KeyboardEvent<HTMLInputElement>) {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      setOpen(true);
      if (items.length) setActive((current) => (current + 1) % items.length);
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      if (items.length) setActive((current) => (current <= 0 ? items.length - 1 : current - 1));
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (expanded && active >= 0) choose(active);
      else {
        setOpen(false);
        search(text.trim());
      }
    } else if (event.key === "Escape") {
      if (expanded) {
        event.preventDefault();
        setOpen(false);
        setActive(-1);
      } else if (text) {
        setText("");
        search("");
      }
    }
  }

  return (
    <div className="catalog-search" role="search">
      <label htmlFor={id} className="visually-hidden">
        {t("search.label")}
      </label>
      <input
        id={id}
        type="search"
        role="combobox"
        autoComplete="off"
        placeholder={t("search.placeholder")}
        aria-autocomplete="list"
        aria-expanded={expanded}
        aria-controls={listId}
        aria-activedescendant={expanded && active >= 0 ? optionId(active) : undefined}
        value={text}
        onChange={(event) => {
          setText(event.target.value);
          setOpen(true);
          setActive(-1);
        }}
        onKeyDown={keyDown}
        onBlur={() => window.setTimeout(() => setOpen(false), 150)}
      />
      <button type="button" onClick={() => search(text.trim())}>
        {t("search.submit")}
      </button>
      <ul id={listId} role="listbox" aria-label={t("search.suggestions")} className="catalog-suggestions" hidden={!expanded}>
        {items.map((suggestion, index) => (
          <li
            key={`${suggestion.kind}-${suggestion.id ?? suggestion.text}`}
            id={optionId(index)}
            role="option"
            aria-selected={index === active}
            className={index === active ? "active" : undefined}
            onMouseDown={(event) => event.preventDefault()}
            onClick={() => choose(index)}
          >
            <span>{suggestion.text}</span>
            <small className="muted">
              {suggestion.kind === "material" ? (suggestion.code ?? t("search.material")) : t("search.category")}
            </small>
          </li>
        ))}
      </ul>
    </div>
  );
}
