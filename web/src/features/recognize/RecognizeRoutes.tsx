// The recognition screens: one photo (camera first, for a phone on site), many photos in a
// batch, and reverse image search.
import { Route, Routes } from "react-router";

import { NotFoundPage } from "../../app/NotFoundPage";
import { BatchPage, BatchesPage } from "./BatchesPage";
import { RecognitionPage, RecognizePage } from "./RecognizePage";
import { ReviewPage } from "./ReviewPage";
import { SearchPage } from "./SearchPage";
import "./recognize.css";

export default function RecognizeRoutes() {
  return (
    <Routes>
      <Route index element={<RecognizePage />} />
      <Route path="batches" element={<BatchesPage />} />
      <Route path="batches/:batchId" element={<BatchPage />} />
      <Route path="search" element={<SearchPage />} />
      <Route path="review" element={<ReviewPage />} />
      <Route path=":recognitionId" element={<RecognitionPage />} />
      <Route path="*" element={<NotFoundPage />} />
    </Routes>
  );
}
