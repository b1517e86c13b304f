fn main() {
    println!("gateway");
}
