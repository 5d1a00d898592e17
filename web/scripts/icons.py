"""Draw the app's PNG icons (the same tiles as public/icon.svg); run once when the icon changes."""

from pathlib import Path

from PIL import Image, ImageDraw

PUBLIC = Path(__file__).resolve().parent.parent / "public"
GREEN = (31, 111, 92, 255)


def draw(size: int, *, maskable: bool) -> Image.Image:
    scale = size / 64
    image = Image.new("RGBA", (size, size), GREEN if maskable else (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    if not maskable:
        pen.rounded_rectangle((0, 0, size - 1, size - 1), radius=14 * scale, fill=GREEN)
    # A maskable icon keeps its drawing inside the middle 80 %.
    inset, span = (0.1 * size, 0.8 * size / 64) if maskable else (0, scale)
    for x, y, alpha in ((12, 12, 255), (34, 12, 191), (12, 34, 191), (34, 34, 128)):
        box = (inset + x * span, inset + y * span, inset + (x + 18) * span, inset + (y + 18) * span)
        tile = Image.new("RGBA", image.size, (0, 0, 0, 0))
        ImageDraw.Draw(tile).rounded_rectangle(box, radius=3 * span, fill=(255, 255, 255, alpha))
        image = Image.alpha_composite(image, tile)
    return image


if __name__ == "__main__":
    draw(192, maskable=False).save(PUBLIC / "icon-192.png")
    draw(512, maskable=False).save(PUBLIC / "icon-512.png")
    draw(512, maskable=True).save(PUBLIC / "icon-512-maskable.png")
