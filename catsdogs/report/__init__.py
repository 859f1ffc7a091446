"""Stage 4, reports: the per-seed summary (summary), tables in Markdown, text, CSV and LaTeX
(tables, latex, numbers), figures (figures, samples), the HTML page (html), and the report
folder that holds them all (build). Renderers only: no verdict is decided here."""
