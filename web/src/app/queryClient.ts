import { QueryClient, type InvalidateOptions, type InvalidateQueryFilters } from "@tanstack/react-query";

/**
 * A query client whose invalidation always ends in an answer given after the change.
 *
 * The stock client, asked to invalidate a query whose first fetch is still under way, joins
 * that fetch instead of starting another (it cancels only fetches of queries that already
 * have data). That fetch may have been answered before the change was made: a photo dropped
 * while the image list was still loading left the list saying "No images yet" until a reload.
 * Cancelling what is in flight first makes the refetch that follows start after the change.
 */
export class FreshQueryClient extends QueryClient {
  override async invalidateQueries(filters?: InvalidateQueryFilters, options?: InvalidateOptions): Promise<void> {
    await this.cancelQueries(filters);
    return super.invalidateQueries(filters, options);
  }
}
