// An image the API serves behind the session's token: fetched with it and shown as a blob: URL
// (an <img src> cannot send an Authorization header). Cached by TanStack Query per URL.
import { useQuery } from "@tanstack/react-query";
import { useEffect, useMemo } from "react";

import { authedFetch } from "../api/client";

async function fetchBlob(url: string): Promise<Blob> {
  const answer = await authedFetch(new Request(new URL(url, window.location.origin)));
  if (!answer.ok) throw new Error(`image ${answer.status}`);
  return answer.blob();
}

export function ApiImage({
  src,
  alt,
  className,
  width,
  height,
}: {
  src: string | null | undefined;
  alt: string;
  className?: string;
  width?: number;
  height?: number;
}) {
  const blob = useQuery({
    queryKey: ["image", src],
    queryFn: () => fetchBlob(src!),
    enabled: Boolean(src),
    staleTime: Infinity,
    gcTime: 5 * 60_000,
  });
  const url = useMemo(() => (blob.data ? URL.createObjectURL(blob.data) : null), [blob.data]);
  useEffect(() => () => (url ? URL.revokeObjectURL(url) : undefined), [url]);
  if (!url) {
    // A decorative image (empty alt) stays out of the accessibility tree while it loads too.
    return alt ? (
      <span className={`image-placeholder ${className ?? ""}`} role="img" aria-label={alt} />
    ) : (
      <span className={`image-placeholder ${className ?? ""}`} aria-hidden="true" />
    );
  }
  return <img src={url} alt={alt} className={className} width={width} height={height} loading="lazy" decoding="async" />;
}
