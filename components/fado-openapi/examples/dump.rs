fn main() {
    println!("{}", fado_openapi::json());
}
