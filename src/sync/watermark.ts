/**
 * Tracks rows in flight for one job and yields the watermark: the highest id such that it and every row
 * before it are finished. Rows are begun in id order and may finish in any order.
 */
export class RowTracker {
  private readonly rows: Array<{ id: string; remaining: number }> = [];
  private readonly byId = new Map<string, { id: string; remaining: number }>();
  private head = 0;
  private mark: string | undefined;

  constructor(initial?: string) {
    this.mark = initial;
  }

  get watermark(): string | undefined {
    return this.mark;
  }

  get pending(): number {
    return this.rows.length - this.head;
  }

  /** Starts a row that owns `objects` objects still to finish (0: finished already). */
  begin(id: string, objects: number): void {
    const entry = { id, remaining: objects };
    this.rows.push(entry);
    if (objects > 0) this.byId.set(id, entry);
    this.advance();
  }

  /** One object of row `id` finished. Returns true when the watermark moved. */
  settle(id: string): boolean {
    const entry = this.byId.get(id);
    if (entry === undefined) return false;
    entry.remaining -= 1;
    if (entry.remaining > 0) return false;
    this.byId.delete(id);
    return this.advance();
  }

  private advance(): boolean {
    const before = this.mark;
    while (this.head < this.rows.length && this.rows[this.head]!.remaining <= 0) this.mark = this.rows[this.head++]!.id;
    // Drop finished entries now and then so the array does not grow with the row count.
    if (this.head > 4096 && this.head * 2 > this.rows.length) {
      this.rows.splice(0, this.head);
      this.head = 0;
    }
    return this.mark !== before;
  }
}
