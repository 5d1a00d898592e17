import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { PhotoPicker } from "./PhotoPicker";

function photo(name: string): File {
  return new File([new Uint8Array([0xff, 0xd8, 0xff])], name, { type: "image/jpeg" });
}

describe("PhotoPicker", () => {
  it("opens the back camera on a phone and hands over the photo taken", async () => {
    const onFiles = vi.fn();
    render(<PhotoPicker onFiles={onFiles} />);
    const camera = screen.getByLabelText(/Take a photo/);
    expect(camera).toHaveAttribute("capture", "environment");
    expect(camera).toHaveAttribute("accept", "image/*");
    await userEvent.upload(camera, photo("wall.jpg"));
    expect(onFiles).toHaveBeenCalledWith([expect.objectContaining({ name: "wall.jpg" })]);
  });

  it("takes one dropped photo, or all of them when many are wanted", () => {
    const one = vi.fn();
    const { unmount } = render(<PhotoPicker onFiles={one} />);
    fireEvent.drop(screen.getByText("Drop a photo here, or choose one"), {
      dataTransfer: { files: [photo("a.jpg"), photo("b.jpg")] },
    });
    expect(one).toHaveBeenCalledWith([expect.objectContaining({ name: "a.jpg" })]);
    unmount();

    const many = vi.fn();
    render(<PhotoPicker multiple onFiles={many} />);
    expect(screen.queryByLabelText(/Take a photo/)).not.toBeInTheDocument();
    fireEvent.drop(screen.getByText("Drop photos or zips here, or choose them"), {
      dataTransfer: { files: [photo("a.jpg"), photo("b.jpg")] },
    });
    expect(many.mock.calls[0]![0]).toHaveLength(2);
  });

  it("ignores a drop while it is busy", () => {
    const onFiles = vi.fn();
    render(<PhotoPicker disabled onFiles={onFiles} />);
    fireEvent.drop(screen.getByText("Drop a photo here, or choose one"), { dataTransfer: { files: [photo("a.jpg")] } });
    expect(onFiles).not.toHaveBeenCalled();
  });
});
